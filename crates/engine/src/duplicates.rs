//! Near-duplicate texts: word shingles and how much of one text another holds.
//!
//! Folders of documents often hold the same passage twice: mdBook's `print.html`, Sphinx's
//! single-page build and Docusaurus' all-in-one pages repeat every chapter, and chunks cut from
//! them start and end elsewhere than the chapter's own. Embeddings alone cannot tell a
//! repetition from two passages on one topic, so duplicates are found on the words: a text's
//! *shingles* are the hashes of its runs of [`SHINGLE_WORDS`] consecutive words (lower-cased,
//! split at anything not alphanumeric, so markup and punctuation do not matter). Two texts are
//! near-duplicates when most shingles of the smaller one occur in the other
//! ([`Shingles::overlap`] ≥ [`NEAR_DUPLICATE`]): exact copies, and chunks of one passage cut
//! at other boundaries.
//!
//! ```
//! use sieve_engine::duplicates::Shingles;
//!
//! let chapter = Shingles::of("The borrow checker rejects two mutable references to one value at once.");
//! let reflowed = Shingles::of("the BORROW checker rejects two mutable references, to one value at once");
//! let other = Shingles::of("Lifetimes name the scopes in which a reference stays valid.");
//! assert!(chapter.is_near_duplicate(&reflowed));
//! assert!(!chapter.is_near_duplicate(&other));
//! ```

use std::hash::{DefaultHasher, Hash, Hasher};

/// Words per shingle.
pub const SHINGLE_WORDS: usize = 5;

/// Smallest [`Shingles::overlap`] of two near-duplicates.
pub const NEAR_DUPLICATE: f32 = 0.8;

/// The distinct shingle hashes of a text, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shingles {
    hashes: Vec<u64>,
}

impl Shingles {
    /// Every shingle of `text`. A text of fewer than [`SHINGLE_WORDS`] words has one shingle,
    /// its words; a text without words has none.
    pub fn of(text: &str) -> Self {
        Self::sampled(text, 1)
    }

    /// The shingles of `text` whose hash is a multiple of `one_in`: a fixed sample (the same
    /// shingle is kept in every text), so overlaps estimated on samples stay unbiased while a
    /// large file's sketch takes `1 / one_in` of the memory.
    pub fn sampled(text: &str, one_in: u64) -> Self {
        let one_in = one_in.max(1);
        let hash = |value: &dyn Fn(&mut DefaultHasher)| {
            let mut h = DefaultHasher::new();
            value(&mut h);
            h.finish()
        };
        // The last SHINGLE_WORDS word hashes, oldest first once full: a huge text is never
        // held as words.
        let mut window = [0u64; SHINGLE_WORDS];
        let mut seen = 0usize;
        let mut hashes = Vec::new();
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let word = hash(&|h| word.to_lowercase().hash(h));
            window.rotate_left(1);
            window[SHINGLE_WORDS - 1] = word;
            seen += 1;
            if seen >= SHINGLE_WORDS {
                hashes.push(hash(&|h| window.hash(h)));
            }
        }
        if (1..SHINGLE_WORDS).contains(&seen) {
            let words = &window[SHINGLE_WORDS - seen..];
            hashes.push(hash(&|h| words.hash(h)));
        }
        hashes.retain(|h| h % one_in == 0);
        hashes.sort_unstable();
        hashes.dedup();
        Shingles { hashes }
    }

    /// The shingle hashes, sorted and distinct.
    pub fn hashes(&self) -> &[u64] {
        &self.hashes
    }

    /// Keeps the shingles for which `keep` is true (e.g. drops a site's navigation, which
    /// every page repeats).
    pub fn retain(&mut self, keep: impl FnMut(&u64) -> bool) {
        self.hashes.retain(keep);
    }

    /// Distinct shingles held.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the text had no words (or none was sampled).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Shingles both texts have.
    pub fn common(&self, other: &Shingles) -> usize {
        let (mut i, mut j, mut n) = (0, 0, 0);
        let (a, b) = (&self.hashes, &other.hashes);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    n += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        n
    }

    /// The share of this text's shingles that `other` also has (0 when this one has none).
    pub fn contained_in(&self, other: &Shingles) -> f32 {
        if self.is_empty() {
            return 0.0;
        }
        self.common(other) as f32 / self.len() as f32
    }

    /// The share of the smaller text's shingles that the other also has (0 when either has
    /// none).
    pub fn overlap(&self, other: &Shingles) -> f32 {
        let smaller = self.len().min(other.len());
        if smaller == 0 {
            return 0.0;
        }
        self.common(other) as f32 / smaller as f32
    }

    /// [`overlap`](Self::overlap) ≥ [`NEAR_DUPLICATE`].
    pub fn is_near_duplicate(&self, other: &Shingles) -> bool {
        self.overlap(other) >= NEAR_DUPLICATE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(from: usize, to: usize) -> String {
        (from..to).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn chunks_of_one_passage_cut_elsewhere_are_near_duplicates() {
        let chapter = Shingles::of(&words(0, 200));
        // The same passage inside a longer page, cut 30 words later.
        let page_chunk = Shingles::of(&format!("# All chapters\n\n{} {}", words(30, 200), words(500, 530)));
        assert!(
            chapter.is_near_duplicate(&page_chunk),
            "{}",
            chapter.overlap(&page_chunk)
        );
        assert!((page_chunk.contained_in(&chapter) - 166.0 / 197.0).abs() < 0.01);
        // Half of it is not.
        let half = Shingles::of(&format!("{} {}", words(0, 100), words(1000, 1100)));
        assert!(!chapter.is_near_duplicate(&half));
    }

    #[test]
    fn markup_case_and_short_texts() {
        assert_eq!(Shingles::of("**Hello**, World!"), Shingles::of("hello world"));
        assert_eq!(Shingles::of("hello world").len(), 1);
        assert!(Shingles::of(" ,; ").is_empty());
        assert_eq!(Shingles::of("").overlap(&Shingles::of("a b c")), 0.0);
        assert!(!Shingles::of("hello world").is_near_duplicate(&Shingles::of("hello there world")));
    }

    #[test]
    fn samples_keep_the_same_shingles_everywhere() {
        let text = words(0, 5_000);
        let all = Shingles::of(&text);
        let sample = Shingles::sampled(&text, 8);
        assert!(
            sample.len() > all.len() / 16 && sample.len() < all.len() / 4,
            "{}",
            sample.len()
        );
        assert_eq!(sample.common(&all), sample.len());
        let later = Shingles::sampled(&words(2_500, 7_500), 8);
        let share = later.contained_in(&sample);
        assert!((share - 0.5).abs() < 0.1, "{share}");
    }
}
