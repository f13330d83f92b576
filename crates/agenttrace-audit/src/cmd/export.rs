//! `export --org ORG --format jsonl|json [--since T] [--until T] [-o FILE]`.
//!
//! `jsonl` is the stored form, byte-identical to storage and verifiable
//! offline; `json` is the same events as one JSON array.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use audit_service::export_jsonl;

use crate::exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Stored events, one per line (verifiable offline).
    Jsonl,
    /// One JSON array of the stored events.
    Json,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Organization whose log to export.
    #[arg(long)]
    org: String,
    /// Output format.
    #[arg(long, value_enum)]
    format: Format,
    /// Events from this time on (RFC 3339, a date, or a duration such as 7d).
    #[arg(long)]
    since: Option<String>,
    /// Events before this time.
    #[arg(long)]
    until: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
}

/// Turns a stream of JSON Lines into one JSON array, without buffering.
struct ArrayWriter<W: Write> {
    inner: W,
    at_line_start: bool,
    first: bool,
}

impl<W: Write> ArrayWriter<W> {
    fn new(mut inner: W) -> std::io::Result<Self> {
        inner.write_all(b"[")?;
        Ok(ArrayWriter { inner, at_line_start: true, first: true })
    }

    fn finish(mut self) -> std::io::Result<W> {
        self.inner.write_all(b"]\n")?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ArrayWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Each newline ends an element; the next element is preceded by a comma.
        for piece in buf.split_inclusive(|b| *b == b'\n') {
            if self.at_line_start {
                if !self.first {
                    self.inner.write_all(b",")?;
                }
                self.first = false;
                self.at_line_start = false;
            }
            match piece.strip_suffix(b"\n") {
                Some(line) => {
                    self.inner.write_all(line)?;
                    self.at_line_start = true;
                }
                None => self.inner.write_all(piece)?,
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) async fn run(data_dir: &Path, args: Args) -> anyhow::Result<u8> {
    super::check_org(&args.org)?;
    let range = super::verify::range(args.since.as_deref(), args.until.as_deref())?;
    let store = super::open_store(data_dir);
    let sink: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(File::create(path).with_context(|| format!("cannot create {}", path.display()))?),
        None => Box::new(std::io::stdout()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let count = match args.format {
        Format::Jsonl => export_jsonl(store.as_ref(), &args.org, range, &mut out).await?,
        Format::Json => {
            let mut array = ArrayWriter::new(&mut out)?;
            let n = export_jsonl(store.as_ref(), &args.org, range, &mut array).await?;
            array.finish()?;
            n
        }
    };
    out.flush()?;
    if let Some(path) = &args.output {
        out.into_inner().map_err(|e| e.into_error())?.flush()?;
        eprintln!("exported {count} events to {}", path.display());
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_writer_joins_lines_whatever_the_write_boundaries() {
        let mut array = ArrayWriter::new(Vec::new()).unwrap();
        for piece in [&b"{\"a\""[..], b":1}\n{\"b\":2}", b"\n"] {
            array.write_all(piece).unwrap();
        }
        assert_eq!(array.finish().unwrap(), b"[{\"a\":1},{\"b\":2}]\n");
        assert_eq!(ArrayWriter::new(Vec::new()).unwrap().finish().unwrap(), b"[]\n");
    }
}
