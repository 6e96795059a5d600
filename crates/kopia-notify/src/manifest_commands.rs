//! `kopia-notify manifest list|show|put|delete`: list and show print the same views as
//! `kopia manifest list|show`, so that a script can diff ours against Kopia's; put and delete
//! write manifest entries as Kopia does.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use kopia_notifications::inert;
use kopia_repo::manifest::{Labels, ManifestEntry, ManifestStore, NewManifest, TYPE_LABEL};
use kopia_repo::repository::Repository;
use serde_json::value::RawValue;

use crate::output;

#[derive(Subcommand)]
pub enum ManifestCommand {
    /// List manifests, oldest first.
    #[command(alias = "ls")]
    List {
        /// Only manifests with this label (repeatable; all must match).
        #[arg(long = "filter", value_name = "KEY:VALUE")]
        filters: Vec<String>,
        /// Print Kopia's JSON (`id`, `length`, `labels`, `mtime`).
        #[arg(long)]
        json: bool,
    },
    /// Show manifests: metadata as `//` comments, then the payload.
    Show {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Add a manifest; prints its ID. Putting the same labels and payload again is a no-op
    /// that prints the same ID, so a retried put never duplicates.
    Put {
        /// A label (repeatable); `type` is required.
        #[arg(long = "label", value_name = "KEY:VALUE", required = true)]
        labels: Vec<String>,
        /// Payload file (a JSON object); standard input when absent.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Delete manifests (a deletion entry each, as Kopia writes it).
    #[command(alias = "rm")]
    Delete {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

pub fn run(command: ManifestCommand, config_file: &Path) -> Result<()> {
    match command {
        ManifestCommand::List { filters, json } => {
            let filter = parse_filters(&filters)?;
            let store = open_store(config_file)?;
            let listed = list(&store, &filter, json);
            // The process ends right after: freeing tens of thousands of entries one by one
            // would cost more than listing them, and the OS takes the memory back at once.
            std::mem::forget(store);
            listed
        }
        ManifestCommand::Show { ids } => {
            let store = open_store(config_file)?;
            show(&store, &ids)
        }
        ManifestCommand::Put { labels, file } => {
            let labels = parse_labels(&labels)?;
            if !labels.contains_key(TYPE_LABEL) {
                bail!("a manifest needs a 'type' label (--label type:NAME)");
            }
            let data = read_payload(file.as_deref())?;
            let (repository, client) = Repository::open_with_client_config(config_file)?;
            let writer = repository.content_writer(client.session_owner())?;
            let mut store = repository.manifest_store();
            let ids = store.write(&writer, &[NewManifest { labels, data }], &[])?;
            println!("{}", ids[0]);
            Ok(())
        }
        ManifestCommand::Delete { ids } => {
            let (repository, client) = Repository::open_with_client_config(config_file)?;
            let mut store = repository.manifest_store();
            store.refresh()?;
            if let Some(damage) = store.damaged().first() {
                bail!("{}", damage.reason);
            }
            for id in &ids {
                store.get(id)?;
            }
            let writer = repository.content_writer(client.session_owner())?;
            store.write(&writer, &[], &ids)?;
            Ok(())
        }
    }
}

/// The manifests, all of them or an error: these commands answer as Kopia's do, which fails
/// when a manifest content cannot be read (the notification commands go on without it).
fn open_store(config_file: &Path) -> Result<ManifestStore> {
    let (repository, _) = Repository::open_with_client_config(config_file)?;
    let mut store = repository.manifest_store();
    store.refresh()?;
    if let Some(damage) = store.damaged().first() {
        bail!("{}", damage.reason);
    }
    Ok(store)
}

/// The payload of a put: a JSON object, from a file or standard input, stored compact.
fn read_payload(file: Option<&Path>) -> Result<Box<RawValue>> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read payload file {}", path.display()))?,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read payload from standard input")?;
            text
        }
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).context("payload is not valid JSON")?;
    if !value.is_object() {
        bail!("payload must be a JSON object");
    }
    Ok(RawValue::from_string(value.to_string())?)
}

/// `key:value` pairs, split at the first colon as Kopia does.
fn parse_pairs(pairs: &[String], what: &str) -> Result<Labels> {
    let mut labels = Labels::new();
    for pair in pairs {
        match pair.split_once(':') {
            Some((key, value)) if !key.is_empty() => {
                labels.insert(key.to_string(), value.to_string());
            }
            _ => bail!("invalid {what} {pair:?}: expected KEY:VALUE"),
        }
    }
    Ok(labels)
}

fn parse_filters(filters: &[String]) -> Result<Labels> {
    parse_pairs(filters, "filter")
}

fn parse_labels(labels: &[String]) -> Result<Labels> {
    let labels = parse_pairs(labels, "label")?;
    if labels.values().any(String::is_empty) {
        bail!("labels need a value (KEY:VALUE)");
    }
    Ok(labels)
}

fn list(store: &ManifestStore, filter: &Labels, json: bool) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let entries = store.find(filter);
    if json {
        // Kopia's JSON list framing: "[", entries separated by ",\n ", then "\n]".
        out.write_all(b"[")?;
        write_in_parallel(&mut out, &entries, json_list_part)?;
        out.write_all(b"\n]")?;
    } else {
        for entry in entries {
            let labels = entry.labels();
            let others: Vec<String> = labels
                .iter()
                .filter(|(k, _)| *k != TYPE_LABEL)
                .map(|(k, v)| format!("{}:{}", inert::line(k), inert::line(v)))
                .collect();
            writeln!(
                out,
                "{} {:>10} {} type:{} {}",
                inert::line(&entry.id),
                entry.data.get().len(),
                output::local_timestamp(&entry.modified),
                inert::line(labels.get(TYPE_LABEL).unwrap_or("")),
                others.join(" ")
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Appends entries as their part of Kopia's JSON list: each after its separator.
fn json_list_part(entries: &[&ManifestEntry], first: bool, part: &mut Vec<u8>) {
    for (i, entry) in entries.iter().enumerate() {
        part.extend_from_slice(if first && i == 0 { b"\n " } else { b",\n " });
        entry.metadata().append_go_json(part);
    }
}

/// Writes `format(batch, is_first, buffer)` of consecutive batches of `entries`, in order.
/// Listings run to tens of thousands of entries and formatting is most of their time: one
/// worker per core formats every so many batches while this thread writes what is ready.
/// Each worker has at most two buffers in use, reused, so memory stays at a few batches.
fn write_in_parallel<T: Sync>(
    out: &mut impl Write,
    entries: &[T],
    format: impl Fn(&[T], bool, &mut Vec<u8>) + Sync,
) -> std::io::Result<()> {
    const BATCH: usize = 1_024;
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let batches: Vec<&[T]> = entries.chunks(BATCH).collect();
    std::thread::scope(|scope| {
        let mut formatted_by_worker = Vec::with_capacity(workers);
        for worker in 0..workers.min(batches.len()) {
            let (done, formatted) = mpsc::sync_channel::<Vec<u8>>(1);
            let (recycle, spare) = mpsc::channel::<Vec<u8>>();
            let (batches, format) = (&batches, &format);
            scope.spawn(move || {
                for (at, batch) in batches.iter().enumerate().skip(worker).step_by(workers) {
                    let mut buffer = spare.try_recv().unwrap_or_default();
                    buffer.clear();
                    format(batch, at == 0, &mut buffer);
                    // The writer stopped (a write failed): nothing more to do.
                    if done.send(buffer).is_err() {
                        return;
                    }
                }
            });
            formatted_by_worker.push((formatted, recycle));
        }
        for at in 0..batches.len() {
            let (formatted, recycle) = &formatted_by_worker[at % workers];
            let buffer = formatted
                .recv()
                .expect("a worker formats each of its batches");
            out.write_all(&buffer)?;
            let _ = recycle.send(buffer);
        }
        Ok(())
    })
}

fn show(store: &ManifestStore, ids: &[String]) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for id in ids {
        let entry = store
            .get(id)
            .with_context(|| format!("error getting metadata for {id:?}"))?;
        writeln!(out, "// id: {}", inert::line(&entry.id))?;
        writeln!(out, "// length: {}", entry.data.get().len())?;
        writeln!(
            out,
            "// modified: {}",
            output::local_timestamp(&entry.modified)
        )?;
        for (key, value) in entry.labels().iter() {
            writeln!(out, "// label {}:{}", inert::line(key), inert::line(value))?;
        }
        // JSON escapes C0 controls, not DEL, C1 or bidi characters: the payload is made
        // inert too (it is what a person reads; `list --json` stays exact).
        let payload = output::indent_json(entry.data.get());
        out.write_all(inert::text(&payload).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(batch: &[usize], first: bool, out: &mut Vec<u8>) {
        for (i, n) in batch.iter().enumerate() {
            let separator = if first && i == 0 { "" } else { "," };
            out.extend_from_slice(format!("{separator}{n}").as_bytes());
        }
    }

    #[test]
    fn parallel_writing_keeps_the_order_of_many_batches() {
        for count in [0, 1, 1_024, 1_025, 10_000] {
            let entries: Vec<usize> = (0..count).collect();
            let mut out = Vec::new();
            write_in_parallel(&mut out, &entries, numbers).unwrap();
            let expected: Vec<String> = entries.iter().map(usize::to_string).collect();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected.join(","),
                "{count}"
            );
        }
    }

    /// Accepts `room` bytes, then fails like a closed pipe.
    struct ClosingWriter {
        room: usize,
    }

    impl Write for ClosingWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            let taken = buf.len().min(self.room);
            self.room -= taken;
            Ok(taken)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_stops_the_workers_and_is_reported() {
        let entries: Vec<usize> = (0..100_000).collect();
        let error =
            write_in_parallel(&mut ClosingWriter { room: 10_000 }, &entries, numbers).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn filters_split_at_the_first_colon() {
        let labels = parse_filters(&["type:snapshot".into(), "path:/a:b".into()]).unwrap();
        assert_eq!(labels["type"], "snapshot");
        assert_eq!(labels["path"], "/a:b");
        assert!(parse_filters(&["nocolon".into()]).is_err());
        assert!(parse_filters(&[":value".into()]).is_err());
    }
}
