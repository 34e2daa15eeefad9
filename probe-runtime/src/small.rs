//! Small replacements for generic std code the runtime would otherwise compile once per type.
//!
//! Everything the runtime instantiates from std is code in every instrumented binary, and a
//! generic function is compiled again for each type it is used with: std's sorts are 20 to 25
//! functions (about 6 KB with their unwind entries) per element type, a thread spawn about 1 KB
//! per closure type. The runtime sorts a few short lists (site counts, armed entries, file
//! names) and starts four threads, so the algorithm here is compiled once, over indices and a
//! `dyn` comparison, and a thread's body is a boxed closure: each use adds only its own
//! comparison or body.

/// Sorts `v` by `less`, stably (equal elements keep their order). O(n log n) comparisons, one
/// allocation of `v.len()` indices.
pub(crate) fn sort_by<T>(v: &mut [T], less: impl Fn(&T, &T) -> bool) {
    if v.len() < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..v.len()).collect();
    {
        let v = &*v;
        // Ties broken by position: a heap sort of distinct keys is stable.
        heapsort(&mut order, &|a, b| {
            less(&v[a], &v[b]) || (a < b && !less(&v[b], &v[a]))
        });
    }
    permute(v, &mut order);
}

/// Sorts `v` and removes repeated elements.
pub(crate) fn sort_unique<T: Ord>(v: &mut Vec<T>) {
    sort_by(v, |a, b| a < b);
    v.dedup();
}

/// Heap sort of indices by `less`.
fn heapsort(x: &mut [usize], less: &dyn Fn(usize, usize) -> bool) {
    let sift = |x: &mut [usize], mut root: usize, end: usize| loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && less(x[child], x[child + 1]) {
            child += 1;
        }
        if !less(x[root], x[child]) {
            return;
        }
        x.swap(root, child);
        root = child;
    };
    let n = x.len();
    for root in (0..n / 2).rev() {
        sift(x, root, n);
    }
    for end in (1..n).rev() {
        x.swap(0, end);
        sift(x, 0, end);
    }
}

/// Rearranges `v` so that position `i` holds what was at `order[i]` (`order` is a
/// permutation; it is used up).
fn permute<T>(v: &mut [T], order: &mut [usize]) {
    const DONE: usize = usize::MAX;
    for i in 0..v.len() {
        let mut j = i;
        while order[j] != DONE {
            let k = order[j];
            order[j] = DONE;
            if k == i {
                break;
            }
            v.swap(j, k);
            j = k;
        }
    }
}

/// Starts a runtime thread named `name` running `body`.
pub(crate) fn spawn(name: &str, body: Box<dyn FnOnce() + Send>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic list of pairs with many equal keys.
    fn pairs(n: usize, seed: u64) -> Vec<(u8, usize)> {
        let mut s = seed | 1;
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s % 7) as u8, i)
            })
            .collect()
    }

    #[test]
    fn sorts_like_the_stable_std_sort() {
        for n in [0, 1, 2, 3, 5, 16, 17, 100, 1000] {
            for seed in 1..6 {
                let mut ours = pairs(n, seed);
                let mut std = ours.clone();
                sort_by(&mut ours, |a, b| a.0 < b.0);
                std.sort_by_key(|p| p.0);
                assert_eq!(ours, std, "ascending, n={n} seed={seed}");
                let mut ours = pairs(n, seed);
                let mut std = ours.clone();
                sort_by(&mut ours, |a, b| a.0 > b.0);
                std.sort_by_key(|p| std::cmp::Reverse(p.0));
                assert_eq!(ours, std, "descending, n={n} seed={seed}");
            }
        }
    }

    #[test]
    fn sorted_and_unique() {
        let mut v = vec!["b", "a", "c", "a", "b"];
        sort_unique(&mut v);
        assert_eq!(v, ["a", "b", "c"]);
        let mut sorted: Vec<u32> = (0..50).collect();
        sort_unique(&mut sorted);
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn a_thread_runs_its_body_under_its_name() {
        let (tx, rx) = std::sync::mpsc::channel();
        spawn(
            "lprobe-test",
            Box::new(move || {
                let _ = tx.send(std::thread::current().name().map(str::to_owned));
            }),
        )
        .expect("spawn");
        assert_eq!(rx.recv().ok().flatten().as_deref(), Some("lprobe-test"));
    }
}
