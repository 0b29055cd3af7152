//! `dataset_generation`: turns labelled chunks into a dataset, a record
//! `{text, categories, source, chunk_id}` per chunk, split into train and
//! validation files by a seeded shuffle.
//!
//! Input: the artifacts of `extraction` dependencies (a result with
//! `assignments`) or the inline parameter `extractions` (records as in that
//! artifact; categories may also be plain names). Parameters: `format`
//! (`jsonl`, default, or `csv`), `seed` (42), `validation_fraction` (0.2),
//! `include_unlabeled` (false: chunks without a category are left out).
//! Result `{train, validation, records, train_records, validation_records,
//! per_category, skipped_unlabeled, format}`, `per_category` counting
//! records per category over both files. Progress: reading the input is the
//! first half, writing the records (`items_processed` of `total_items`) the
//! second.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::artifacts::ArtifactDir;
use super::chunks::read_jsonl;
use super::dirs::Dirs;
use super::inputs::Inputs;
use super::params::{array_param, bool_param, f64_param, str_param, u64_param};
use super::stage::Stage;
use super::task::Task;
use crate::model::Progress;

/// A dataset record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The chunk's text.
    pub text: String,
    /// Its category names.
    pub categories: Vec<String>,
    /// Its document.
    pub source: String,
    /// Its chunk id.
    pub chunk_id: String,
}

/// The file format of the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON record per line.
    Jsonl,
    /// RFC 4180 CSV (written by the `csv` crate): a header, CRLF line
    /// ends, fields quoted when they hold a comma, a quote or a line break;
    /// categories joined by `;`.
    Csv,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }
}

/// The `dataset_generation` job type: reads artifacts under `dirs` and
/// writes its own under `dirs.data_dir`.
pub fn handler(dirs: Dirs) -> Stage {
    Stage::new(dirs, process)
}

/// An extraction line as the dataset reads it.
#[derive(Debug, Deserialize)]
struct Extracted {
    #[serde(default)]
    chunk_id: String,
    #[serde(default)]
    source: String,
    text: String,
    #[serde(default)]
    categories: Vec<CategoryRef>,
}

/// A category of an extraction: `{"name", ...}` or just its name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CategoryRef {
    Name(String),
    Assignment { name: String },
}

impl From<Extracted> for Record {
    fn from(e: Extracted) -> Record {
        Record {
            text: e.text,
            categories: e
                .categories
                .into_iter()
                .map(|c| match c {
                    CategoryRef::Name(name) | CategoryRef::Assignment { name } => name,
                })
                .collect(),
            source: e.source,
            chunk_id: e.chunk_id,
        }
    }
}

fn process(task: &Task, inputs: &Inputs, dirs: &Dirs) -> anyhow::Result<Value> {
    let params = &inputs.params;
    let format = match str_param(params, "format")?
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("jsonl") | Some("json") => Format::Jsonl,
        Some("csv") => Format::Csv,
        Some(other) => anyhow::bail!("unknown format '{other}': expected jsonl or csv"),
    };
    let seed = u64_param(params, "seed", 42)?;
    let validation_fraction = f64_param(params, "validation_fraction", 0.2, 0.0..=1.0)?;
    let include_unlabeled = bool_param(params, "include_unlabeled", false)?;

    // Progress: reading the input is the first half, writing the files the
    // second; the expected input size comes from the extraction results.
    let sources = inputs.dependency_results("assignments");
    let inline = array_param(params, "extractions")?;
    let expected: u64 = sources
        .iter()
        .filter_map(|result| result.get("chunks").and_then(Value::as_u64))
        .sum::<u64>()
        + inline.map_or(0, |items| items.len() as u64);
    let mut records = Vec::new();
    let mut read = 0u64;
    let mut skipped_unlabeled = 0u64;
    let mut keep = |e: Extracted| {
        if e.categories.is_empty() && !include_unlabeled {
            skipped_unlabeled += 1;
        } else {
            records.push(Record::from(e));
        }
        read += 1;
        task.report(Progress {
            fraction: 0.5 * read as f64 / expected.max(read) as f64,
            items_processed: Some(0),
            total_items: None,
        });
        Ok(())
    };
    let mut given = false;
    for result in sources {
        let Some(path) = result.get("artifact").and_then(Value::as_str) else {
            continue;
        };
        given = true;
        read_jsonl(
            task,
            &inputs.dependency_artifact(task, dirs, path)?,
            &mut keep,
        )?;
    }
    if let Some(items) = inline {
        given = true;
        for (i, item) in items.iter().enumerate() {
            task.check()?;
            let extracted: Extracted = serde_json::from_value(item.clone())
                .with_context(|| format!("extractions[{i}] is not a valid extraction record"))?;
            keep(extracted)?;
        }
    }
    if !given {
        anyhow::bail!("no extractions given: depend on an extraction job or pass extractions");
    }

    let mut order: Vec<usize> = (0..records.len()).collect();
    shuffle(&mut order, seed);
    let validation_count =
        ((records.len() as f64 * validation_fraction).round() as usize).min(records.len());
    let (validation, train) = order.split_at(validation_count);

    let mut per_category: BTreeMap<&str, u64> = BTreeMap::new();
    for record in &records {
        for category in &record.categories {
            *per_category.entry(category).or_default() += 1;
        }
    }
    let artifacts = ArtifactDir::create(&dirs.artifacts, inputs.job_id)
        .context("cannot create the artifact directory")?;
    let total = records.len() as u64;
    let mut written = 0u64;
    let mut paths = Vec::new();
    for (split, indices) in [("train", train), ("validation", validation)] {
        let name = format!("{split}.{}", format.extension());
        let mut out = RecordWriter::create(format, artifacts.create_file(&name)?)?;
        for &i in indices {
            task.check()?;
            out.write(&records[i])?;
            written += 1;
            task.report(Progress {
                fraction: 0.5 + 0.5 * written as f64 / total as f64,
                items_processed: Some(written),
                total_items: Some(total),
            });
        }
        out.finish()?;
        paths.push(artifacts.reference(&name));
    }
    artifacts.commit(task)?;
    Ok(json!({
        "train": paths[0],
        "validation": paths[1],
        "records": records.len(),
        "train_records": train.len(),
        "validation_records": validation.len(),
        "per_category": per_category,
        "skipped_unlabeled": skipped_unlabeled,
        "format": format.extension(),
    }))
}

/// A dataset file being written, in its format (the CSV writer, with its
/// own buffer, is boxed to keep the enum small).
enum RecordWriter {
    Jsonl(BufWriter<File>),
    Csv(Box<csv::Writer<File>>),
}

impl RecordWriter {
    /// Starts a file of `format` on `file`; a CSV file starts with its header.
    fn create(format: Format, file: File) -> anyhow::Result<RecordWriter> {
        Ok(match format {
            Format::Jsonl => RecordWriter::Jsonl(BufWriter::new(file)),
            Format::Csv => {
                let mut out = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(file);
                out.write_record(["text", "categories", "source", "chunk_id"])?;
                RecordWriter::Csv(Box::new(out))
            }
        })
    }

    /// Appends `record`.
    fn write(&mut self, record: &Record) -> anyhow::Result<()> {
        match self {
            RecordWriter::Jsonl(out) => {
                serde_json::to_writer(&mut *out, record)?;
                out.write_all(b"\n")?;
            }
            RecordWriter::Csv(out) => {
                let categories = record.categories.join(";");
                out.write_record([
                    record.text.as_str(),
                    &categories,
                    &record.source,
                    &record.chunk_id,
                ])?;
            }
        }
        Ok(())
    }

    /// Flushes the file and syncs it to disk.
    fn finish(self) -> anyhow::Result<()> {
        let file = match self {
            RecordWriter::Jsonl(out) => out.into_inner().map_err(|e| e.into_error())?,
            RecordWriter::Csv(out) => out.into_inner().map_err(|e| e.into_error())?,
        };
        file.sync_all()?;
        Ok(())
    }
}

/// splitmix64: a tiny, well-mixed 64-bit generator; enough for a
/// reproducible shuffle without a dependency.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number below `bound`, without modulo bias; 0 for a bound
    /// of 0.
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        let limit = u64::MAX - u64::MAX % bound;
        loop {
            let x = self.next_u64();
            if x < limit {
                return x % bound;
            }
        }
    }
}

/// Fisher–Yates shuffle of `items` driven by `seed`: the same seed gives
/// the same order.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of the reference implementation for seed 0.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn shuffles_are_permutations_fixed_by_the_seed() {
        let mut a: Vec<u32> = (0..100).collect();
        let mut b = a.clone();
        shuffle(&mut a, 7);
        shuffle(&mut b, 7);
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        a.sort_unstable();
        assert_eq!(a, (0..100).collect::<Vec<_>>());
    }
}
