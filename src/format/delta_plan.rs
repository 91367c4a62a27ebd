//! The delta plan: which chunks of a new image to copy from local images and which byte
//! ranges of the remote image to request.
//!
//! [`plan`] is pure: from the new image's chunk index and the indexes of the
//! images a host already holds, it decides, chunk by chunk in image order,
//! what to copy from a local file and which byte ranges of the remote image
//! to request. Nearby ranges are merged (a request costs more than a few KiB
//! of bytes) and their number is bounded, so that even a hostile index
//! cannot make a delta cost much more than one full download: at most the
//! image's size in bytes, in at most [`MAX_RANGES`] requests. The assembly
//! that follows a plan is `update::assembly`.

use std::collections::HashMap;

use crate::format::chunk_index::ChunkIndex;

/// Remote ranges closer than this are fetched as one: the bytes in between
/// cost less than another request and its round trip.
pub const MERGE_GAP: u64 = 64 << 10;

/// The most ranges a plan requests. Beyond it the closest ones are merged.
pub const MAX_RANGES: usize = 1000;

/// The most local chunks that may turn out not to match their index before
/// an assembly gives up: each costs one more request.
pub const MAX_MISMATCHES: usize = 16;

/// One step of a plan, in image order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Copy `length` bytes at `offset` of local image `source` (a position
    /// in the slice given to [`plan`]); they should hash to `digest`.
    Copy {
        source: usize,
        offset: u64,
        length: u32,
        digest: [u8; 32],
    },
    /// Fetch bytes `start..end` of the remote image.
    Fetch { start: u64, end: u64 },
}

impl Step {
    /// How many bytes of the new image the step yields.
    pub fn length(&self) -> u64 {
        match *self {
            Step::Copy { length, .. } => u64::from(length),
            Step::Fetch { start, end } => end - start,
        }
    }
}

/// How to build the new image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// The image size, which the steps cover without gap or overlap.
    pub size: u64,
}

impl Plan {
    /// Bytes copied from local images.
    pub fn reused(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Copy { length, .. } => u64::from(*length),
                Step::Fetch { .. } => 0,
            })
            .sum()
    }

    /// Bytes requested from the origin.
    pub fn to_fetch(&self) -> u64 {
        self.size.saturating_sub(self.reused())
    }

    /// The number of range requests.
    pub fn requests(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Fetch { .. }))
            .count()
    }
}

/// Where a chunk can be found locally.
#[derive(Debug, Clone, Copy)]
struct Local {
    source: usize,
    offset: u64,
    length: u32,
}

/// Plans the image described by `new` from the images described by `locals`.
pub fn plan(new: &ChunkIndex, locals: &[&ChunkIndex]) -> Plan {
    let mut known: HashMap<[u8; 32], Local> = HashMap::new();
    for (source, index) in locals.iter().enumerate() {
        for (offset, chunk) in index.offsets() {
            known.entry(chunk.digest).or_insert(Local {
                source,
                offset,
                length: chunk.length,
            });
        }
    }

    // Chunk by chunk: the local copy, if any, with the same length (a
    // hostile index may pair a known digest with another length).
    let found: Vec<(u64, u32, [u8; 32], Option<Local>)> = new
        .offsets()
        .map(|(offset, chunk)| {
            let local = known
                .get(&chunk.digest)
                .copied()
                .filter(|l| l.length == chunk.length);
            (offset, chunk.length, chunk.digest, local)
        })
        .collect();

    // The ranges nobody has, adjacent ones joined, then nearby ones merged.
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &(offset, length, _, local) in &found {
        if local.is_some() {
            continue;
        }
        let end = offset + u64::from(length);
        match ranges.last_mut() {
            Some(last) if offset - last.1 < MERGE_GAP => last.1 = end,
            _ => ranges.push((offset, end)),
        }
    }
    if ranges.len() > MAX_RANGES {
        ranges = merge_closest(&ranges, MAX_RANGES);
    }

    let mut steps = Vec::with_capacity(found.len());
    let mut next_range = ranges.iter().peekable();
    for (offset, length, digest, local) in found {
        // Skip the chunks inside the range last emitted.
        if let Some(Step::Fetch { end, .. }) = steps.last()
            && offset < *end
        {
            continue;
        }
        match next_range.peek() {
            Some(&&(start, end)) if start == offset => {
                steps.push(Step::Fetch { start, end });
                next_range.next();
            }
            _ => {
                // Outside every range, so found locally.
                if let Some(local) = local {
                    steps.push(Step::Copy {
                        source: local.source,
                        offset: local.offset,
                        length,
                        digest,
                    });
                }
            }
        }
    }
    Plan {
        steps,
        size: new.size,
    }
}

/// Merges the smallest gaps between `ranges` (sorted, disjoint) until at
/// most `max` ranges remain: the fewest extra bytes for the requests saved.
fn merge_closest(ranges: &[(u64, u64)], max: usize) -> Vec<(u64, u64)> {
    let mut gaps: Vec<(u64, usize)> = ranges
        .windows(2)
        .enumerate()
        .map(|(i, w)| (w[1].0 - w[0].1, i))
        .collect();
    gaps.sort_unstable();
    let mut join_after = vec![false; ranges.len()];
    for &(_, i) in gaps.iter().take(ranges.len().saturating_sub(max)) {
        join_after[i] = true;
    }
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(max);
    let mut joining = false;
    for (i, &(start, end)) in ranges.iter().enumerate() {
        match merged.last_mut() {
            Some(last) if joining => last.1 = end,
            _ => merged.push((start, end)),
        }
        joining = join_after[i];
    }
    merged
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::format::chunk_index::{Chunk, MIN_CHUNK};

    const K: u32 = 1 << 10;

    /// An index of chunks named by numbers, each of the length given.
    pub(crate) fn synthetic(chunks: &[(u32, u32)]) -> ChunkIndex {
        let chunks: Vec<Chunk> = chunks
            .iter()
            .map(|&(id, length)| {
                let mut digest = [0u8; 32];
                digest[..4].copy_from_slice(&id.to_be_bytes());
                Chunk { digest, length }
            })
            .collect();
        ChunkIndex {
            size: chunks.iter().map(|c| u64::from(c.length)).sum(),
            digest: [0; 32],
            chunks,
        }
    }

    /// The steps cover the image in order, without gap or overlap, and each
    /// copy is of a chunk of the new index at that place.
    pub(crate) fn assert_covers(plan: &Plan, new: &ChunkIndex) {
        let mut at = 0;
        let starts: HashMap<u64, &Chunk> = new.offsets().collect();
        for step in &plan.steps {
            match *step {
                Step::Copy { length, digest, .. } => {
                    let chunk = starts[&at];
                    assert_eq!((chunk.length, chunk.digest), (length, digest));
                }
                Step::Fetch { start, end } => {
                    assert_eq!(start, at);
                    assert!(end > start);
                    assert!(starts.contains_key(&end) || end == new.size);
                }
            }
            at += step.length();
        }
        assert_eq!(at, new.size);
        assert_eq!(plan.size, new.size);
    }

    #[test]
    fn an_identical_image_is_copied_entirely() {
        let old = synthetic(&[(1, 64 * K), (2, 20 * K), (3, 100 * K), (4, 3)]);
        let plan = plan(&old, &[&old]);
        assert_covers(&plan, &old);
        assert_eq!(plan.requests(), 0);
        assert_eq!(plan.reused(), old.size);
        assert_eq!(plan.to_fetch(), 0);
    }

    #[test]
    fn nothing_known_is_one_request_for_everything() {
        let new = synthetic(&[(1, 64 * K), (2, 20 * K), (3, 100 * K)]);
        let other = synthetic(&[(9, 64 * K)]);
        for plan in [plan(&new, &[]), plan(&new, &[&other])] {
            assert_covers(&plan, &new);
            assert_eq!(
                plan.steps,
                [Step::Fetch {
                    start: 0,
                    end: new.size
                }]
            );
        }
    }

    #[test]
    fn an_empty_image_needs_nothing() {
        let new = synthetic(&[]);
        let plan = plan(&new, &[]);
        assert!(plan.steps.is_empty());
        assert_eq!(plan.size, 0);
    }

    #[test]
    fn only_the_changed_chunks_are_fetched_and_far_apart_ones_separately() {
        let old = synthetic(&[
            (1, 64 * K),
            (2, 64 * K),
            (3, 64 * K),
            (4, 64 * K),
            (5, 64 * K),
        ]);
        let new = synthetic(&[
            (1, 64 * K),
            (20, 30 * K),
            (3, 64 * K),
            (4, 64 * K),
            (50, 64 * K),
        ]);
        let plan = plan(&new, &[&old]);
        assert_covers(&plan, &new);
        let fetches: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Fetch { .. }))
            .copied()
            .collect();
        // The gap between them is 128 KiB of known chunks: two requests.
        assert_eq!(
            fetches,
            [
                Step::Fetch {
                    start: 64 << 10,
                    end: 94 << 10
                },
                Step::Fetch {
                    start: 222 << 10,
                    end: 286 << 10
                }
            ]
        );
        assert_eq!(plan.to_fetch(), 94 << 10);
        assert_eq!(plan.reused(), 192 << 10);
    }

    #[test]
    fn ranges_closer_than_the_merge_gap_are_fetched_as_one() {
        let old = synthetic(&[(1, 64 * K), (2, 63 * K), (3, 64 * K)]);
        // Chunk 2 (63 KiB, under the gap) sits between two new chunks.
        let new = synthetic(&[
            (10, 20 * K),
            (2, 63 * K),
            (11, 20 * K),
            (3, 64 * K),
            (12, 20 * K),
        ]);
        let plan = plan(&new, &[&old]);
        assert_covers(&plan, &new);
        assert_eq!(
            plan.steps[0],
            Step::Fetch {
                start: 0,
                end: 103 << 10
            }
        );
        // Chunk 3 is exactly the gap: kept as a copy.
        assert!(matches!(plan.steps[1], Step::Copy { length, .. } if length == 64 * K));
        assert_eq!(plan.requests(), 2);
        assert_eq!(plan.reused(), 64 << 10);
    }

    #[test]
    fn a_known_digest_with_another_length_is_fetched() {
        let old = synthetic(&[(1, 64 * K), (2, 64 * K)]);
        let new = synthetic(&[(1, 64 * K), (2, 30 * K)]);
        let plan = plan(&new, &[&old]);
        assert_covers(&plan, &new);
        assert_eq!(plan.to_fetch(), 30 << 10);
    }

    #[test]
    fn chunks_come_from_any_local_image() {
        let a = synthetic(&[(1, 64 * K), (2, 64 * K)]);
        let b = synthetic(&[(3, 64 * K), (4, 64 * K)]);
        let new = synthetic(&[(4, 64 * K), (1, 64 * K), (2, 64 * K)]);
        let plan = plan(&new, &[&a, &b]);
        assert_covers(&plan, &new);
        let sources: Vec<(usize, u64)> = plan
            .steps
            .iter()
            .map(|s| match *s {
                Step::Copy { source, offset, .. } => (source, offset),
                Step::Fetch { .. } => panic!("nothing to fetch"),
            })
            .collect();
        assert_eq!(sources, [(1, 64 << 10), (0, 0), (0, 64 << 10)]);
    }

    #[test]
    fn the_number_of_requests_is_bounded_by_merging_the_closest_ranges() {
        // 3000 new chunks, each between known ones; the gaps grow with i
        // so the closest ones are the first.
        let mut old = Vec::new();
        let mut new = Vec::new();
        for i in 0..3000u32 {
            new.push((1_000_000 + i, MIN_CHUNK));
            let gap = 64 * K + i * 8;
            old.push((i, gap));
            new.push((i, gap));
        }
        let (old, new) = (synthetic(&old), synthetic(&new));
        let plan = plan(&new, &[&old]);
        assert_covers(&plan, &new);
        assert_eq!(plan.requests(), MAX_RANGES);
        // Of the 2999 gaps between new chunks, the 2000 smallest (the first)
        // were fetched; the last 999 and the one after the last new chunk
        // are still copied.
        assert!(matches!(plan.steps.last(), Some(Step::Copy { .. })));
        let kept: u64 = (2000..3000u64).map(|i| (64 << 10) + i * 8).sum();
        assert_eq!(plan.reused(), kept);
        assert!(plan.to_fetch() < new.size);
    }

    #[test]
    fn merging_the_closest_ranges_joins_the_smallest_gaps() {
        let ranges = [(0, 10), (12, 20), (100, 110), (111, 120), (500, 510)];
        assert_eq!(merge_closest(&ranges, 5), ranges);
        assert_eq!(merge_closest(&ranges, 3), [(0, 20), (100, 120), (500, 510)]);
        assert_eq!(merge_closest(&ranges, 1), [(0, 510)]);
    }

    proptest::proptest! {
        /// Whatever the indexes, a plan covers the image in order, fetches at
        /// most the image, within the request bound, and copies only chunks
        /// whose digest and length a local image has.
        #[test]
        fn any_plan_covers_the_image_within_the_bounds(
            new in proptest::collection::vec((0u32..40, 1u32..5), 0..300),
            old in proptest::collection::vec((0u32..40, 1u32..5), 0..300),
        ) {
            // Lengths are chosen from a few sizes so that digests repeat
            // with the same or another length.
            let scale = |v: &[(u32, u32)]| -> Vec<(u32, u32)> {
                v.iter().map(|&(id, l)| (id, l * 24 * K)).collect()
            };
            let (new, old) = (synthetic(&scale(&new)), synthetic(&scale(&old)));
            let plan = plan(&new, &[&old]);
            assert_covers(&plan, &new);
            proptest::prop_assert!(plan.requests() <= MAX_RANGES);
            proptest::prop_assert!(plan.to_fetch() <= new.size);
            let known: std::collections::HashSet<([u8; 32], u32)> =
                old.chunks.iter().map(|c| (c.digest, c.length)).collect();
            for step in &plan.steps {
                if let Step::Copy { digest, length, offset, source } = *step {
                    proptest::prop_assert!(known.contains(&(digest, length)));
                    proptest::prop_assert_eq!(source, 0);
                    proptest::prop_assert!(offset + u64::from(length) <= old.size);
                }
            }
            // Two fetches are never adjacent or closer than the merge gap.
            let mut last_end: Option<u64> = None;
            let mut at = 0;
            for step in &plan.steps {
                if let Step::Fetch { start, end } = *step {
                    if let Some(previous) = last_end {
                        proptest::prop_assert!(start - previous >= MERGE_GAP);
                    }
                    last_end = Some(end);
                }
                at += step.length();
            }
            proptest::prop_assert_eq!(at, new.size);
        }
    }
}
