//! `sieve`, the command-line tool: argument parsing and dispatch only. Each command lives in its
//! own module and calls the library (`sieve::engine`, `sieve::encoders`); errors end the
//! process with one line on stderr and exit status 1 (2 for a command line clap rejects).

#[macro_use]
mod output;
mod encode;
mod eval;
mod import_beir;
mod index;
mod info;
mod rank;
mod reindex;
mod search;
#[cfg(feature = "train")]
mod train;

use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sieve::LoadOptions;
use sieve::engine::{Collection, CollectionConfig};

/// An embedded semantic search database: sentence-transformers models, dense / sparse / BM25
/// indexes and a persistent collection in a directory.
///
/// Models are Hugging Face ids resolved through the local hub cache ($HF_HUB_CACHE, else
/// $HF_HOME/hub, else ~/.cache/huggingface/hub). Models run on the device named by SIEVE_DEVICE
/// (cpu, wgpu, cuda, cuda:N; default cpu) in the precision named by SIEVE_DTYPE (f32, int8, bf16,
/// f16; default f32, or for an existing collection the precision it was built in; int8 on the
/// CPU only, bf16 on CPUs with AVX-512 BF16 and on GPUs, f16 on GPUs).
#[derive(Debug, Parser)]
#[command(name = "sieve", version, propagate_version = true)]
struct Cli {
    /// No progress bars and no notes on stderr (warnings and errors still print).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Encode(encode::Args),
    Rank(rank::Args),
    Index(index::Args),
    Search(search::Args),
    Eval(eval::Args),
    ImportBeir(import_beir::Args),
    Info(info::Args),
    Reindex(reindex::Args),
    #[cfg(feature = "train")]
    Train(train::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "train")]
    if matches!(cli.command, Command::Train(_)) {
        // A training step frees and reallocates its activations op by op: keep that memory
        // (up to 1.5× faster, see the allocator module).
        sieve::encoders::allocator::retain_freed_memory();
    }
    let out = output::Output::new(cli.quiet);
    let result = match cli.command {
        Command::Encode(args) => encode::run(args, &out),
        Command::Rank(args) => rank::run(args, &out),
        Command::Index(args) => index::run(args, &out),
        Command::Search(args) => search::run(args, &out),
        Command::Eval(args) => eval::run(args, &out),
        Command::ImportBeir(args) => import_beir::run(args, &out),
        Command::Info(args) => info::run(args, &out),
        Command::Reindex(args) => reindex::run(args, &out),
        #[cfg(feature = "train")]
        Command::Train(args) => train::run(args, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`sieve search … | head`): stop quietly, as Unix tools do.
        Err(e) if e.broken_pipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A failed command: the one line printed after `error: `.
#[derive(Debug)]
pub struct Error {
    message: String,
    /// Stdout was closed by its reader: the command ends without a message.
    broken_pipe: bool,
}

/// Result of a command.
pub type Result<T = ()> = std::result::Result<T, Error>;

impl Error {
    /// An error with this message.
    pub fn msg(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            broken_pipe: false,
        }
    }

    /// A failed write of `what`; a closed pipe ends the command quietly.
    pub fn write(what: &str, e: std::io::Error) -> Self {
        Error {
            broken_pipe: e.kind() == std::io::ErrorKind::BrokenPipe,
            ..Error::msg(format!("cannot write {what}: {e}"))
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep it to one line whatever the source said.
        f.write_str(&self.message.replace('\n', " "))
    }
}

impl From<sieve::engine::EngineError> for Error {
    fn from(e: sieve::engine::EngineError) -> Self {
        Error::msg(e.to_string())
    }
}

impl From<sieve::EncoderError> for Error {
    fn from(e: sieve::EncoderError) -> Self {
        Error::msg(e.to_string())
    }
}

/// Opens the collection in `db`; a clear error when there is none.
pub fn open_collection(db: &Path, out: &output::Output) -> Result<Collection> {
    if !db.exists() {
        return Err(Error::msg(format!(
            "no collection at {}: create one with `sieve index PATH --db {0}` or `sieve import-beir DIR --db {0}`",
            db.display()
        )));
    }
    out.note(&format!("opening {} (loading models)", db.display()));
    open_existing(db, &load_options()?)
}

/// Opens an existing collection on SIEVE_DEVICE, in SIEVE_DTYPE when it is set and otherwise in
/// the precision the collection's documents were encoded in.
fn open_existing(db: &Path, options: &LoadOptions) -> Result<Collection> {
    let dtype_set = std::env::var("SIEVE_DTYPE").is_ok_and(|v| !v.trim().is_empty());
    Ok(match dtype_set {
        true => Collection::open_with(db, options)?,
        false => Collection::open_on(db, options.device)?,
    })
}

/// Opens the collection in `db`, creating it with the default models when `db` holds none: it
/// does not exist, is an empty directory, or holds what a killed `create` left (`create`
/// refuses any other directory).
pub fn open_or_create_collection(db: &Path, out: &output::Output) -> Result<Collection> {
    let options = load_options()?;
    if !Collection::exists(db) {
        out.note(&format!("creating {} with the default models", db.display()));
        Ok(Collection::create_with(db, CollectionConfig::default(), &options)?)
    } else {
        out.note(&format!("opening {} (loading models)", db.display()));
        open_existing(db, &options)
    }
}

/// Device and float type for every model a command loads: SIEVE_DEVICE and SIEVE_DTYPE.
pub fn load_options() -> Result<LoadOptions> {
    Ok(LoadOptions::from_env()?)
}
