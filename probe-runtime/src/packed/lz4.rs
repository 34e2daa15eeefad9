//! LZ4 block decompression, for a table's string: the build compresses it (the `lz4_flex`
//! crate's block format, no frame, no checksum) because it is mostly function paths and line
//! texts that repeat each other's prefixes (regex-syntax, every line: 186 KB in 53 KB; at
//! function entries 96 KB in 17 KB), and it sits in every instrumented binary whether or not
//! anyone probes it. The control thread expands it once, when it first reads the table.
//!
//! Format: sequences of a token byte (high nibble: the count of literals, low nibble: the
//! match length minus 4; 15 in either means more length bytes follow, each added, until one
//! is not 255), the literals, then a two-byte little-endian offset back into the output and
//! the match, copied byte by byte (a match may overlap its own output). The last sequence
//! has literals only.
//!
//! Nothing here trusts its input: any malformed block gives `None`, never a panic or an
//! allocation over the length the build recorded.

/// The `len` bytes compressed in `block`, or `None` when the block is malformed or does not
/// expand to exactly `len` bytes.
pub fn decompress(block: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    let mut at = 0;
    while at < block.len() {
        let token = block[at];
        at += 1;
        let literals = length(block, &mut at, usize::from(token >> 4))?;
        let end = at.checked_add(literals)?;
        if out.len().checked_add(literals)? > len {
            return None;
        }
        out.extend_from_slice(block.get(at..end)?);
        at = end;
        if at == block.len() {
            break;
        }
        let offset = usize::from(u16::from_le_bytes([*block.get(at)?, *block.get(at + 1)?]));
        at += 2;
        let matched = length(block, &mut at, usize::from(token & 15))?.checked_add(4)?;
        if offset == 0 || offset > out.len() || out.len().checked_add(matched)? > len {
            return None;
        }
        let from = out.len() - offset;
        for k in from..from + matched {
            // `k` is below `out.len()`: it starts below it and both grow by one per byte.
            let byte = *out.get(k)?;
            out.push(byte);
        }
    }
    (out.len() == len).then_some(out)
}

/// A length whose first part is `nibble`: 15 continues in the bytes at `at`.
fn length(block: &[u8], at: &mut usize, nibble: usize) -> Option<usize> {
    let mut n = nibble;
    if n == 15 {
        loop {
            let more = *block.get(*at)?;
            *at += 1;
            n = n.checked_add(usize::from(more))?;
            if more != 255 {
                break;
            }
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block written by hand: literals "abc", then a match of 9 bytes at offset 3 (token
    /// low nibble 5), then the last literals "Z".
    const ABC: &[u8] = &[0x35, b'a', b'b', b'c', 3, 0, 0x10, b'Z'];

    #[test]
    fn expands_literals_and_overlapping_matches() {
        assert_eq!(decompress(ABC, 13).as_deref(), Some(&b"abcabcabcabcZ"[..]));
        // Literals only.
        assert_eq!(
            decompress(&[0x20, b'h', b'i'], 2).as_deref(),
            Some(&b"hi"[..])
        );
        assert_eq!(decompress(&[], 0).as_deref(), Some(&b""[..]));
    }

    #[test]
    fn long_lengths_continue_in_more_bytes() {
        // 15 + 255 + 10 = 280 literals.
        let mut block = vec![0xf0, 255, 10];
        block.extend(std::iter::repeat_n(b'x', 280));
        assert_eq!(decompress(&block, 280), Some(vec![b'x'; 280]));
        // One literal, then a match of 4 + 15 + 1 = 20 bytes of it, then none.
        let block = [0x1f, b'y', 1, 0, 1, 0x00];
        assert_eq!(decompress(&block, 21), Some(vec![b'y'; 21]));
    }

    #[test]
    fn malformed_blocks_are_refused_not_panicked_on() {
        // The wrong length, either way.
        assert_eq!(decompress(ABC, 12), None);
        assert_eq!(decompress(ABC, 14), None);
        // Every truncation of a valid block.
        for n in 0..ABC.len() {
            assert_eq!(decompress(&ABC[..n], 13), None, "{n}");
        }
        // An offset of zero, or before the start of the output.
        assert_eq!(decompress(&[0x10, b'a', 0, 0, 0x00], 5), None);
        assert_eq!(decompress(&[0x10, b'a', 2, 0, 0x00], 5), None);
        // Literals running past the block, and a length that never ends.
        assert_eq!(decompress(&[0x50, b'a'], 5), None);
        assert_eq!(decompress(&[0xf0, 255, 255], 600), None);
        // A length past what the build recorded is refused before anything is allocated.
        let mut huge = vec![0xf0];
        huge.extend(std::iter::repeat_n(255, 64));
        huge.push(0);
        assert_eq!(decompress(&huge, 100), None);
        // Every byte value in every position of a valid block: no panic.
        for i in 0..ABC.len() {
            for b in 0..=255u8 {
                let mut block = ABC.to_vec();
                block[i] = b;
                let _ = decompress(&block, 13);
            }
        }
    }
}
