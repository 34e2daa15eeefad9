//! A site table's compressed text (`packed::lz4::decompress`, run by the control thread on
//! the first read of a table): any block and any recorded length give `None` or exactly that
//! many bytes, never a panic or more memory than the length; a block the build's compressor
//! (`lz4_flex`) wrote expands back to its input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lprobe_fuzz::bounded;
use probe_runtime::packed::lz4;

fuzz_target!(|data: &[u8]| {
    // The first two bytes: the recorded length; the rest: the block.
    let (len, block) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0, data),
    };
    bounded("table_text", || {
        if let Some(out) = lz4::decompress(block, len) {
            assert_eq!(out.len(), len);
        }
        let packed = lz4_flex::block::compress(data);
        assert_eq!(
            lz4::decompress(&packed, data.len()).as_deref(),
            Some(data),
            "round trip"
        );
    });
});
