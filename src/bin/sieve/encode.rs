//! `sieve encode`: one text per input line to one JSON line per embedding, dense
//! (`SentenceTransformer`) or sparse (`SparseEncoder`), in input order.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::Serialize;
use sieve::{EncodeOptions, ModelFiles, SentenceTransformer, SparseEncodeOptions, SparseEncoder};

use crate::output::Output;
use crate::{Error, Result, load_options};

/// Lines encoded per call to the model (and per progress step).
const LINES_PER_CALL: usize = 1024;

/// Encode texts, one per line, into embeddings written as JSON Lines.
///
/// Dense: `{"embedding": [f32, ...]}` per line. Sparse: `{"indices": [u32, ...], "values":
/// [f32, ...]}` per line. Output lines are in input order; an empty input line is encoded as
/// the empty text.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  sieve encode --model sentence-transformers/all-MiniLM-L6-v2 --input texts.txt --output vectors.jsonl"
)]
pub struct Args {
    /// Model: a Hugging Face id (from the local hub cache) or a model folder.
    #[arg(long, value_name = "ID")]
    model: String,
    /// Model kind: a bi-encoder (`dense`) or a SPLADE model (`sparse`).
    #[arg(long, value_enum, default_value_t = Kind::Dense)]
    kind: Kind,
    /// Text file, one text per line (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Where to write the JSON Lines (`-`: standard output).
    #[arg(long, value_name = "FILE", default_value = "-")]
    output: PathBuf,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// A prompt from the model's `prompts` (e.g. `query`, `document`) prepended to each text.
    #[arg(long, value_name = "NAME")]
    prompt_name: Option<String>,
}

/// Which encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// SentenceTransformer: one dense vector per text.
    Dense,
    /// SparseEncoder (SPLADE): one sparse vector over the vocabulary per text.
    Sparse,
}

#[derive(Serialize)]
struct DenseLine<'a> {
    embedding: &'a [f32],
}

enum Encoder {
    Dense(SentenceTransformer, EncodeOptions),
    Sparse(SparseEncoder, SparseEncodeOptions),
}

pub fn run(args: Args, out: &Output) -> Result {
    let lines = read_lines(&args.input)?;
    let load = load_options()?;
    // A bare name is looked up under the kind's organization, as sentence-transformers does.
    let organization = match args.kind {
        Kind::Dense => "sentence-transformers",
        Kind::Sparse => "sparse-encoder",
    };
    let files = ModelFiles::resolve_in(&args.model, organization)?;
    let batch_size = args.batch_size as usize;
    let encoder = match args.kind {
        Kind::Dense => Encoder::Dense(
            SentenceTransformer::from_files(&files, &load)?,
            EncodeOptions {
                batch_size,
                prompt_name: args.prompt_name.clone(),
                ..EncodeOptions::default()
            },
        ),
        Kind::Sparse => Encoder::Sparse(
            SparseEncoder::from_files(&files, &load)?,
            SparseEncodeOptions {
                batch_size,
                prompt_name: args.prompt_name.clone(),
                ..SparseEncodeOptions::default()
            },
        ),
    };
    let mut sink = open_output(&args.output)?;
    let output_name = args.output.display().to_string();
    let write_error = |e: std::io::Error| Error::write(&output_name, e);
    let bar = out.bar(lines.len() as u64, "encoding");
    for (n, chunk) in lines.chunks(LINES_PER_CALL).enumerate() {
        let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let first_line = n * LINES_PER_CALL + 1;
        match &encoder {
            Encoder::Dense(model, options) => {
                for (i, row) in model.encode_with(&texts, options)?.rows().enumerate() {
                    finite(row, first_line + i)?;
                    write_json_line(&mut sink, &DenseLine { embedding: row }).map_err(write_error)?;
                }
            }
            Encoder::Sparse(model, options) => {
                for (i, row) in model.encode_with(&texts, options)?.rows().iter().enumerate() {
                    finite(&row.values, first_line + i)?;
                    write_json_line(&mut sink, row).map_err(write_error)?;
                }
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    sink.flush().map_err(write_error)?;
    out.note(&format!("encoded {} texts with {}", lines.len(), args.model));
    Ok(())
}

/// JSON has no infinity or NaN (serde would write `null`): such an output is an error that
/// names the input line.
fn finite(values: &[f32], line: usize) -> Result {
    match values.iter().find(|v| !v.is_finite()) {
        None => Ok(()),
        Some(v) => Err(Error::msg(format!(
            "line {line}: the model produced a non-finite value ({v}); nothing is written for it"
        ))),
    }
}

/// The lines of a UTF-8 text file (`-`: standard input), without line endings.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let mut bytes = Vec::new();
    let name = if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Error::msg(format!("cannot read standard input: {e}")))?;
        "standard input".to_string()
    } else {
        let mut file = File::open(path).map_err(|e| Error::msg(format!("cannot read {}: {e}", path.display())))?;
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::msg(format!("cannot read {}: {e}", path.display())))?;
        path.display().to_string()
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::msg(format!("{name}:{line}: not valid UTF-8"))
    })?;
    Ok(text.lines().map(str::to_string).collect())
}

fn open_output(path: &Path) -> Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::new(std::io::stdout().lock())));
    }
    let file = File::create(path).map_err(|e| Error::msg(format!("cannot create {}: {e}", path.display())))?;
    Ok(Box::new(BufWriter::new(file)))
}

fn write_json_line(sink: &mut dyn Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *sink, value)?;
    sink.write_all(b"\n")
}
