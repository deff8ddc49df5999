//! Files that mostly repeat other files' text (mdBook's `print.html`, single-page builds): their
//! chunks duplicate the others', so a sync reports them for the caller to exclude.

use std::collections::HashMap;

use serde::Serialize;

use crate::duplicates::Shingles;

/// One shingle in this many is kept in a file's sketch (see [`Shingles::sampled`]).
pub(super) const SKETCH_ONE_IN: u64 = 4;
/// Smallest share of a file found in others, and of another file found in it, to report it.
const MOSTLY: f32 = 0.8;
/// Files with fewer sampled shingles (about 60 words of their own) are too small to report or
/// to count as repeated: redirect stubs, empty index pages.
const MIN_SKETCH: usize = 16;

/// A file whose text mostly repeats other files'.
///
/// ```
/// use sieve_engine::DuplicateFile;
///
/// let page = DuplicateFile { path: "book/print.html".into(), repeats: vec!["book/ch1.html".into()], covered: 0.97 };
/// assert_eq!(page.exclude_pattern(), "book/print.html"); // for SyncOptions::exclude
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicateFile {
    /// Its name (relative path).
    pub path: String,
    /// The files whose text it holds.
    pub repeats: Vec<String>,
    /// The share of its text found in other files.
    pub covered: f32,
}

impl DuplicateFile {
    /// The glob that matches this file alone, to leave it out with
    /// [`SyncOptions::exclude`](crate::SyncOptions::exclude).
    pub fn exclude_pattern(&self) -> String {
        glob::Pattern::escape(&self.path)
    }
}

/// The files that mostly repeat others' text, each with the files it holds. Of files that hold
/// each other (copies), the one whose path sorts last is reported. Text found in more than a
/// tenth of the files (and more than two), such as a site's navigation on every page, is
/// boilerplate and ignored.
pub(super) fn duplicate_files(sketches: &[(String, Shingles)]) -> Vec<DuplicateFile> {
    // How many files hold each sampled shingle.
    let mut holders: HashMap<u64, usize> = HashMap::new();
    for (_, s) in sketches {
        for &h in s.hashes() {
            *holders.entry(h).or_default() += 1;
        }
    }
    let held_by = |h: &u64| holders.get(h).copied().unwrap_or(0);
    let boilerplate = (sketches.len() / 10).max(2);
    let sketches: Vec<(String, Shingles)> = sketches
        .iter()
        .map(|(path, s)| {
            let mut s = s.clone();
            s.retain(|h| held_by(h) <= boilerplate);
            if s.len() < MIN_SKETCH {
                s = Shingles::default();
            }
            (path.clone(), s)
        })
        .collect();
    let mut found = Vec::new();
    for (i, (path, b)) in sketches.iter().enumerate() {
        if b.is_empty() {
            continue;
        }
        let covered = b.hashes().iter().filter(|h| held_by(h) > 1).count() as f32 / b.len() as f32;
        if covered < MOSTLY {
            continue;
        }
        let repeats: Vec<String> = sketches
            .iter()
            .enumerate()
            .filter(|&(j, (other, a))| {
                j != i && !a.is_empty() && a.contained_in(b) >= MOSTLY && (b.contained_in(a) < MOSTLY || other < path)
            })
            .map(|(_, (other, _))| other.clone())
            .collect();
        if !repeats.is_empty() {
            found.push(DuplicateFile {
                path: path.clone(),
                repeats,
                covered,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twelve chapters that all carry the same navigation, two redirect stubs and a page that
    /// concatenates three chapters: only the page is reported, and it names those three.
    #[test]
    fn only_pages_repeating_whole_files_are_reported_past_navigation_and_stubs() {
        let nav = "Contents Introduction Ownership Borrowing Lifetimes Traits Generics Closures Iterators Errors Macros Unsafe Appendix";
        let body = |i: usize| (0..120).map(|w| format!("c{i}w{w}")).collect::<Vec<_>>().join(" ");
        let mut files: Vec<(String, String)> = (0..12)
            .map(|i| (format!("ch{i:02}.html"), format!("{nav} {}", body(i))))
            .collect();
        files.push((
            "print.html".into(),
            format!("{nav} {} {} {}", body(1), body(2), body(3)),
        ));
        for stub in ["old-a.html", "old-b.html"] {
            files.push((
                stub.into(),
                "Redirecting to the new page. Click here if you are not redirected.".into(),
            ));
        }
        let sketches: Vec<(String, Shingles)> = files
            .iter()
            .map(|(path, text)| (path.clone(), Shingles::sampled(text, SKETCH_ONE_IN)))
            .collect();
        let found = duplicate_files(&sketches);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "print.html");
        assert_eq!(found[0].repeats, ["ch01.html", "ch02.html", "ch03.html"]);
        assert!(found[0].covered > 0.95, "{}", found[0].covered);
    }

    #[test]
    fn the_exclude_pattern_matches_the_file_alone() {
        let d = DuplicateFile {
            path: "a[1]*.html".into(),
            repeats: vec![],
            covered: 1.0,
        };
        let pattern = glob::Pattern::new(&d.exclude_pattern()).unwrap();
        assert!(pattern.matches("a[1]*.html") && !pattern.matches("a1x.html"));
    }
}
