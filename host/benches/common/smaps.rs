//! A process's resident memory by what holds it, from `/proc/PID/smaps`.

use std::collections::BTreeMap;

/// Resident KiB by part. Stacks (wasmtime's fiber stacks, and threads' of
/// the same size) are the writable mappings of the commonest size right
/// after a one-page guard; tables the one
/// writable reservation over 1 GiB; linear memories the run of mappings
/// around the largest reservation: private pages, and pages of the shared
/// initial image, counted once per slot that maps them, as `VmRSS` counts
/// them. The rest: anonymous mappings and `[heap]` (the host's allocations),
/// and files.
#[derive(Debug, Default, Clone)]
pub struct Parts(pub BTreeMap<&'static str, u64>);

pub const STACKS: &str = "stacks";
pub const MEMORY_PRIVATE: &str = "linear memory, private";
pub const MEMORY_IMAGE: &str = "linear memory, shared image";
pub const TABLES: &str = "tables";
pub const HEAP: &str = "host heap";
pub const FILES: &str = "files";

struct Vma {
    start: u64,
    end: u64,
    writable: bool,
    image: bool,
    name: String,
    rss: u64,
    anonymous: u64,
}

fn vmas(pid: u32) -> Vec<Vma> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut out: Vec<Vma> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        {
            let perms = words.next().unwrap_or("");
            let name = words.nth(3).unwrap_or("").to_string();
            out.push(Vma {
                start,
                end,
                writable: perms.starts_with("rw"),
                image: name.contains("memfd:"),
                name,
                rss: 0,
                anonymous: 0,
            });
        } else if let (Some(v), Some(kb)) = (out.last_mut(), words.next().and_then(|w| w.parse().ok())) {
            match first {
                "Rss:" => v.rss = kb,
                "Anonymous:" => v.anonymous = kb,
                _ => {}
            }
        }
    }
    out
}

impl Parts {
    pub fn of(pid: u32) -> Parts {
        let vmas = vmas(pid);
        let largest = (0..vmas.len()).max_by_key(|&i| vmas[i].end - vmas[i].start).unwrap();
        // glibc's per-thread heaps: 64 MiB-aligned reservations of 64 MiB,
        // their unused end inaccessible. The kernel may merge a heap's
        // start with a mapping just below it, so its end is what is checked.
        const ARENA: u64 = 64 << 20;
        let arena = |i: usize| {
            let v = &vmas[i];
            let rest = vmas.get(i + 1).filter(|n| n.start == v.end && !n.writable);
            v.writable
                && v.name.is_empty()
                && match rest {
                    Some(n) => n.end.is_multiple_of(ARENA) && n.end - v.end < ARENA,
                    None => v.start.is_multiple_of(ARENA) && v.end - v.start == ARENA,
                }
        };
        // Fiber stacks (and threads'): writable after a one-page guard, all
        // of one size; the commonest such size is the fiber stacks'.
        let guarded: Vec<bool> = (0..vmas.len())
            .map(|i| {
                i > 0 && vmas[i].writable && !vmas[i - 1].writable && vmas[i - 1].end - vmas[i - 1].start == 4 << 10
            })
            .collect();
        let mut sizes = BTreeMap::new();
        for (_, v) in vmas.iter().enumerate().filter(|(i, _)| guarded[*i]) {
            *sizes.entry(v.end - v.start).or_insert(0usize) += 1;
        }
        let stack_size = sizes.into_iter().max_by_key(|(_, n)| *n).map(|(size, _)| size);
        let in_pool = |i: usize| (vmas[i].name.is_empty() || vmas[i].image) && !arena(i);
        let (mut lo, mut hi) = (largest, largest);
        while lo > 0 && vmas[lo - 1].end == vmas[lo].start && in_pool(lo - 1) {
            lo -= 1;
        }
        while hi + 1 < vmas.len() && vmas[hi + 1].start == vmas[hi].end && in_pool(hi + 1) {
            hi += 1;
        }
        let mut parts = BTreeMap::new();
        for (i, v) in vmas.iter().enumerate() {
            let part = if v.image {
                *parts.entry(MEMORY_PRIVATE).or_default() += v.anonymous;
                *parts.entry(MEMORY_IMAGE).or_default() += v.rss - v.anonymous;
                continue;
            } else if guarded[i] && Some(v.end - v.start) == stack_size {
                STACKS
            } else if arena(i) {
                HEAP
            } else if v.writable && v.end - v.start > 1 << 30 {
                TABLES
            } else if (lo..=hi).contains(&i) {
                MEMORY_PRIVATE
            } else if v.name.starts_with('/') {
                FILES
            } else {
                HEAP
            };
            *parts.entry(part).or_default() += v.rss;
        }
        Parts(parts)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Each part's growth from `idle`, per one of `n`, in KiB.
    pub fn per(&self, idle: &Parts, n: usize) -> Vec<(&'static str, f64)> {
        self.0.iter().map(|(k, v)| (*k, (*v as f64 - *idle.0.get(k).unwrap_or(&0) as f64) / n.max(1) as f64)).collect()
    }
}
