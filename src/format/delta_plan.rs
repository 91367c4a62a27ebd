//! The delta plan: which chunks of a new image to copy from local images and which byte
//! ranges of the remote image to request.
//!
//! [`plan`] is pure: from the new image's chunk index and the indexes of the
//! images a host already holds, it decides, chunk by chunk in image order,
//! what to copy from a local file and which byte ranges of the remote image
//! to request. Only ranges that touch are joined: a delta asks for many ranges
//! per request (`format::byteranges`), where one more range costs about a
//! hundred bytes, so no unchanged chunk is fetched to save a request. Even a
//! hostile index cannot make a delta fetch more than the image's size, in at
//! most one range per chunk. The assembly that follows a plan is
//! `update::assembly`.

use std::collections::HashMap;

use crate::format::chunk_index::{ChunkDigest, ChunkIndex};

/// Remote ranges closer than this are fetched as one: the bytes in between
/// cost less than the head of one more part of a multi-range answer (about
/// 100 bytes) and its place in the `Range` value. Every chunk but the last is
/// at least `MIN_CHUNK` (2 KiB) long, so in practice only touching ranges join.
/// (It was 64 KiB, with at most 1000 requests, when each range was a request
/// of its own: at 25 % of the image changed, that fetched 55 %.)
pub const MERGE_GAP: u64 = 1 << 10;

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
        digest: ChunkDigest,
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
    let mut known: HashMap<ChunkDigest, Local> = HashMap::new();
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
    let found: Vec<(u64, u32, ChunkDigest, Option<Local>)> = new
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::format::chunk_index::{Chunk, DIGEST_LEN, MIN_CHUNK};

    const K: u32 = 1 << 10;

    /// An index of chunks named by numbers, each of the length given.
    pub(crate) fn synthetic(chunks: &[(u32, u32)]) -> ChunkIndex {
        let chunks: Vec<Chunk> = chunks
            .iter()
            .map(|&(id, length)| {
                let mut digest = [0u8; DIGEST_LEN];
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
        // Chunk 2 (512 bytes, under the gap) and chunk 3 (exactly the gap) each sit
        // between two new chunks; so does chunk 4, as long as the smallest real chunk.
        let old = synthetic(&[(2, K / 2), (3, K), (4, MIN_CHUNK)]);
        let new = synthetic(&[
            (10, 20 * K),
            (2, K / 2),
            (11, 20 * K),
            (3, K),
            (12, 20 * K),
            (4, MIN_CHUNK),
            (13, 20 * K),
        ]);
        let plan = plan(&new, &[&old]);
        assert_covers(&plan, &new);
        assert_eq!(
            plan.steps[0],
            Step::Fetch {
                start: 0,
                end: (40 << 10) + 512
            }
        );
        assert!(matches!(plan.steps[1], Step::Copy { length, .. } if length == K));
        assert!(matches!(plan.steps[3], Step::Copy { length, .. } if length == MIN_CHUNK));
        assert_eq!(plan.requests(), 3);
        assert_eq!(plan.reused(), u64::from(K + MIN_CHUNK));
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

    proptest::proptest! {
        /// Whatever the indexes, a plan covers the image in order, fetches at
        /// most the image, in at most one range per chunk, and copies only chunks
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
            proptest::prop_assert!(plan.requests() <= new.chunks.len());
            proptest::prop_assert!(plan.to_fetch() <= new.size);
            let known: std::collections::HashSet<(ChunkDigest, u32)> =
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
