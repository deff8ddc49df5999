//! Which files a sync reads: folders walked recursively (hidden files and folders skipped,
//! links followed), files given by name, narrowed by a glob and excludes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::extract::{EXTENSIONS, Format};
use super::sync::SyncEvent;
use crate::error::{EngineError, Result};

/// The folders and files a sync mirrors, and which of their files it reads.
///
/// Paths are stored relative to the folder given (a file given directly: its file name), with
/// `/` between components. Globs match that relative path; `*` also crosses `/`.
///
/// ```
/// use sieve_engine::SyncOptions;
///
/// let options = SyncOptions::new(["notes", "todo.md"]).glob("*.md")?.exclude("drafts/*")?;
/// assert_eq!(options.paths().len(), 2);
/// assert!(SyncOptions::new(["notes"]).glob("[").is_err());
/// # Ok::<(), sieve_engine::EngineError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SyncOptions {
    paths: Vec<PathBuf>,
    glob: Option<(String, glob::Pattern)>,
    excludes: Vec<glob::Pattern>,
}

impl SyncOptions {
    /// Every readable file (see [`Format`]) under `paths`: folders are walked, files read as
    /// they are.
    pub fn new<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> Self {
        SyncOptions {
            paths: paths.into_iter().map(Into::into).collect(),
            glob: None,
            excludes: Vec::new(),
        }
    }

    /// Only files whose relative path matches `pattern` (e.g. `*.md`);
    /// [`EngineError::InvalidPattern`] when it is not a glob.
    pub fn glob(mut self, pattern: &str) -> Result<Self> {
        self.glob = Some((pattern.to_string(), compile(pattern)?));
        Ok(self)
    }

    /// Leaves out files whose relative path matches `pattern` (e.g. `print.html`), and removes
    /// what was indexed from them before; may be given several times.
    /// [`EngineError::InvalidPattern`] when it is not a glob.
    pub fn exclude(mut self, pattern: &str) -> Result<Self> {
        self.excludes.push(compile(pattern)?);
        Ok(self)
    }

    /// The folders and files given.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Walks the paths now, before any collection is touched: the files to read, sorted by
    /// relative path. What is left out is reported to `on_event` as [`SyncEvent::Skipped`] and
    /// kept in [`FileSet::skipped`].
    ///
    /// Errors: a path that cannot be read ([`EngineError::CannotIndex`]), two files that
    /// would be stored under one name ([`EngineError::NameClash`]), and no readable file at all
    /// ([`EngineError::NoIndexableFiles`]).
    ///
    /// ```
    /// use sieve_engine::SyncOptions;
    ///
    /// let dir = std::env::temp_dir().join(format!("sieve-doc-scan-{}", std::process::id()));
    /// std::fs::create_dir_all(dir.join("sub"))?;
    /// std::fs::write(dir.join("a.md"), "# A\n\nFirst note.")?;
    /// std::fs::write(dir.join("sub/b.txt"), "Second note.")?;
    /// std::fs::write(dir.join("photo.jpg"), [0u8; 4])?;
    /// let files = SyncOptions::new([&dir]).scan(&mut |_| {})?;
    /// let names: Vec<&str> = files.files().iter().map(|f| f.name.as_str()).collect();
    /// assert_eq!(names, ["a.md", "sub/b.txt"]);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scan(&self, on_event: &mut dyn FnMut(SyncEvent<'_>)) -> Result<FileSet> {
        let mut found: BTreeMap<String, SourceFile> = BTreeMap::new();
        let mut walk = FileSet::default();
        let mut skip = |walk: &mut FileSet, path: PathBuf, reason: SkipReason| {
            let skipped = Skipped { path, reason };
            on_event(SyncEvent::Skipped(&skipped));
            walk.skipped.push(skipped);
        };
        for root in &self.paths {
            let meta = std::fs::metadata(root).map_err(|source| EngineError::CannotIndex {
                path: root.clone(),
                source,
            })?;
            let mut candidates: Vec<(String, PathBuf)> = Vec::new();
            if meta.is_file() {
                match root.file_name().and_then(|n| n.to_str()) {
                    Some(name) => candidates.push((name.to_string(), root.clone())),
                    None => return Err(EngineError::NotAFileName { path: root.clone() }),
                }
            } else {
                let walker = walkdir::WalkDir::new(root)
                    .follow_links(true)
                    .sort_by_file_name()
                    .into_iter()
                    .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
                for entry in walker {
                    let entry = match entry {
                        Ok(entry) => entry,
                        Err(e) => {
                            let error = e.to_string().replace('\n', " ");
                            let rel = e.path().and_then(|p| relative(p, root));
                            if let Some(rel) = &rel {
                                walk.unreadable.push(rel.clone());
                            }
                            let path = e.path().unwrap_or(root).to_path_buf();
                            let kept = rel.is_some();
                            skip(&mut walk, path, SkipReason::UnreadableFolder { error, kept });
                            continue;
                        }
                    };
                    if !entry.file_type().is_file() {
                        continue;
                    }
                    match relative(entry.path(), root) {
                        Some(rel) => candidates.push((rel, entry.path().to_path_buf())),
                        None => skip(&mut walk, entry.path().to_path_buf(), SkipReason::NameNotUtf8),
                    }
                }
            }
            for (name, path) in candidates {
                let Some(format) = Format::of(&path) else {
                    if meta.is_file() {
                        skip(&mut walk, path, SkipReason::UnknownFormat);
                    }
                    continue;
                };
                if self.glob.as_ref().is_some_and(|(_, p)| !p.matches(&name))
                    || self.excludes.iter().any(|p| p.matches(&name))
                {
                    continue;
                }
                if let Some(other) = found.get(&name) {
                    if same_file(&other.path, &path) {
                        continue;
                    }
                    return Err(EngineError::NameClash {
                        first: other.path.clone(),
                        second: path,
                        name,
                    });
                }
                found.insert(name.clone(), SourceFile { name, path, format });
            }
        }
        if found.is_empty() {
            return Err(EngineError::NoIndexableFiles {
                paths: self.paths.clone(),
                glob: self.glob.as_ref().map(|(g, _)| g.clone()),
            });
        }
        walk.files = found.into_values().collect();
        Ok(walk)
    }
}

fn compile(pattern: &str) -> Result<glob::Pattern> {
    glob::Pattern::new(pattern).map_err(|e| EngineError::InvalidPattern {
        pattern: pattern.to_string(),
        reason: e.to_string(),
    })
}

/// What [`SyncOptions::scan`] found: the input of
/// [`Collection::sync_files`](crate::Collection::sync_files). Never empty.
#[derive(Debug, Default)]
pub struct FileSet {
    /// Sorted by name.
    pub(super) files: Vec<SourceFile>,
    /// Relative paths of the folders that could not be read (`""`: a whole root).
    pub(super) unreadable: Vec<String>,
    pub(super) skipped: Vec<Skipped>,
}

impl FileSet {
    /// The files to read, sorted by name.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// What the walk left out, and why.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Whether a stored file lies under a folder the walk could not read: what was indexed from
    /// it stays, as for a file that cannot be read.
    pub(super) fn under_unreadable(&self, name: &str) -> bool {
        self.unreadable
            .iter()
            .any(|dir| dir.is_empty() || name.strip_prefix(dir.as_str()).is_some_and(|r| r.starts_with('/')))
    }
}

/// A file a sync reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The name its chunks are stored under (metadata `path`, ids `<name>#<chunk>`): its path
    /// relative to the folder given, `/`-separated (a file given directly: its file name).
    pub name: String,
    /// Where it is on disk.
    pub path: PathBuf,
    /// How its text is read.
    pub format: Format,
}

/// A file or folder a sync left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Where it is on disk.
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    /// Why.
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            // The walker's message names the folder already.
            SkipReason::UnreadableFolder { error, .. } => f.write_str(error),
            reason => write!(f, "{}: {reason}", self.path.display()),
        }
    }
}

/// Why a file or folder was left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkipReason {
    /// A folder could not be read (no permission, a link to nowhere). When `kept`, what was
    /// indexed from under it stays and its files count as skipped; otherwise it has no name
    /// anything could have been stored under.
    UnreadableFolder {
        /// What the walk reported, naming the folder.
        error: String,
        /// Whether what was indexed from it is kept.
        kept: bool,
    },
    /// The file's name is not UTF-8, so it has no name to be stored under.
    NameNotUtf8,
    /// A file given by name whose extension is none of [`EXTENSIONS`].
    UnknownFormat,
    /// The file could not be read; what was indexed from it before is kept.
    Unreadable {
        /// The I/O error.
        error: String,
    },
    /// The file is not UTF-8 text; what was indexed from it before is kept.
    NotUtf8 {
        /// Bytes before the first invalid one.
        valid_up_to: usize,
    },
    /// A new file with no text: nothing to store.
    NoText,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::UnreadableFolder { error, .. } => f.write_str(error),
            SkipReason::NameNotUtf8 => f.write_str("the name is not UTF-8"),
            SkipReason::UnknownFormat => write!(f, "not one of {EXTENSIONS}"),
            SkipReason::Unreadable { error } => write!(f, "cannot read it: {error}"),
            SkipReason::NotUtf8 { valid_up_to } => {
                write!(f, "not valid UTF-8 (invalid byte at offset {valid_up_to})")
            }
            SkipReason::NoText => f.write_str("no text"),
        }
    }
}

/// A path as a string, even when it is not UTF-8 (a [`SkipReason::NameNotUtf8`] path is not).
fn lossy<S: serde::Serializer>(path: &Path, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// `path` below `root` as the `/`-separated name it is stored under; `None` when not UTF-8.
fn relative(path: &Path, root: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts.map(|parts| parts.join("/"))
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sieve-walk-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn scan(options: &SyncOptions) -> (Result<FileSet>, Vec<Skipped>) {
        let mut events = Vec::new();
        let result = options.scan(&mut |e| {
            if let SyncEvent::Skipped(s) = e {
                events.push(s.clone());
            }
        });
        (result, events)
    }

    #[test]
    fn scans_readable_files_past_hidden_globs_and_excludes() {
        let dir = tempdir("files");
        std::fs::create_dir_all(dir.join("sub/.git")).unwrap();
        for (name, text) in [
            ("a.md", "a"),
            ("b.TXT", "b"),
            ("sub/c.html", "c"),
            ("sub/print.html", "p"),
            ("sub/.git/d.md", "d"),
            (".e.md", "e"),
            ("f.pdf", "f"),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let names = |set: &FileSet| set.files().iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        let (all, skipped) = scan(&SyncOptions::new([&dir]));
        assert_eq!(names(&all.unwrap()), ["a.md", "b.TXT", "sub/c.html", "sub/print.html"]);
        assert!(skipped.is_empty(), "{skipped:?}");
        let options = SyncOptions::new([&dir])
            .glob("*.html")
            .unwrap()
            .exclude("sub/print.html")
            .unwrap();
        assert_eq!(names(&scan(&options).0.unwrap()), ["sub/c.html"]);
        // A file given by name is stored under its file name; an unreadable format is reported.
        let (set, skipped) = scan(&SyncOptions::new([dir.join("sub/c.html"), dir.join("f.pdf")]));
        assert_eq!(names(&set.unwrap()), ["c.html"]);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].reason, SkipReason::UnknownFormat);
        assert_eq!(
            skipped[0].to_string(),
            format!("{}: not one of {EXTENSIONS}", dir.join("f.pdf").display())
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn errors_say_what_is_wrong_before_anything_is_written() {
        let dir = tempdir("errors");
        let missing = dir.join("missing");
        let e = scan(&SyncOptions::new([&missing])).0.unwrap_err();
        assert!(
            matches!(&e, EngineError::CannotIndex { path, .. } if *path == missing),
            "{e}"
        );
        std::fs::write(dir.join("x.png"), [0u8]).unwrap();
        let e = scan(&SyncOptions::new([&dir]).glob("*.md").unwrap()).0.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "no indexable files ({EXTENSIONS}) matching \"*.md\" under {}: nothing indexed",
                dir.display()
            )
        );
        std::fs::create_dir_all(dir.join("one")).unwrap();
        std::fs::create_dir_all(dir.join("two")).unwrap();
        std::fs::write(dir.join("one/n.md"), "1").unwrap();
        std::fs::write(dir.join("two/n.md"), "2").unwrap();
        let e = scan(&SyncOptions::new([dir.join("one"), dir.join("two")]))
            .0
            .unwrap_err();
        assert!(
            matches!(&e, EngineError::NameClash { name, .. } if name == "n.md"),
            "{e}"
        );
        // The same file twice is one file.
        let set = scan(&SyncOptions::new([dir.join("one"), dir.join("one/n.md")]))
            .0
            .unwrap();
        assert_eq!(set.files().len(), 1);
        let e = SyncOptions::new([&dir]).exclude("[").unwrap_err();
        assert!(
            matches!(&e, EngineError::InvalidPattern { pattern, .. } if pattern == "["),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn stored_files_under_an_unreadable_folder_are_kept() {
        let set = FileSet {
            unreadable: vec!["kept".into()],
            ..FileSet::default()
        };
        assert!(set.under_unreadable("kept/a.md") && set.under_unreadable("kept/deep/b.md"));
        assert!(!set.under_unreadable("kept.md") && !set.under_unreadable("keptx/a.md"));
        let root = FileSet {
            unreadable: vec![String::new()],
            ..FileSet::default()
        };
        assert!(root.under_unreadable("anything.md"));
    }
}
