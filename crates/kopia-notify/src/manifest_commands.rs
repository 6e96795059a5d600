//! `kopia-notify manifest list|show`: the same views as `kopia manifest list|show`, so that a
//! script can diff ours against Kopia's.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use kopia_repo::manifest::{Labels, ManifestStore};
use kopia_repo::repository::Repository;

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
}

pub fn run(command: ManifestCommand, config_file: &Path) -> Result<()> {
    match command {
        ManifestCommand::List { filters, json } => {
            let filter = parse_filters(&filters)?;
            let store = open_store(config_file)?;
            list(&store, &filter, json)
        }
        ManifestCommand::Show { ids } => {
            let store = open_store(config_file)?;
            show(&store, &ids)
        }
    }
}

fn open_store(config_file: &Path) -> Result<ManifestStore> {
    let (repository, _) = Repository::open_with_client_config(config_file)?;
    let mut store = repository.manifest_store();
    store.refresh()?;
    Ok(store)
}

/// `key:value` pairs, split at the first colon as Kopia does.
fn parse_filters(filters: &[String]) -> Result<Labels> {
    let mut labels = Labels::new();
    for filter in filters {
        match filter.split_once(':') {
            Some((key, value)) if !key.is_empty() => {
                labels.insert(key.to_string(), value.to_string());
            }
            _ => bail!("invalid filter {filter:?}: expected KEY:VALUE"),
        }
    }
    Ok(labels)
}

fn list(store: &ManifestStore, filter: &Labels, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let entries = store.find(filter);
    if json {
        // Kopia's JSON list framing: "[", entries separated by ",\n ", then "\n]".
        write!(out, "[")?;
        for (i, entry) in entries.iter().enumerate() {
            let separator = if i == 0 { "\n " } else { ",\n " };
            write!(
                out,
                "{separator}{}",
                serde_json::to_string(&entry.metadata())?
            )?;
        }
        write!(out, "\n]")?;
    } else {
        for entry in entries {
            let labels = entry.labels();
            let others: Vec<String> = labels
                .iter()
                .filter(|(k, _)| k.as_str() != kopia_repo::manifest::TYPE_LABEL)
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            writeln!(
                out,
                "{} {:>10} {} type:{} {}",
                entry.id,
                entry.data.get().len(),
                output::local_timestamp(&entry.modified),
                labels
                    .get(kopia_repo::manifest::TYPE_LABEL)
                    .map_or("", String::as_str),
                others.join(" ")
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn show(store: &ManifestStore, ids: &[String]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for id in ids {
        let entry = store
            .get(id)
            .with_context(|| format!("error getting metadata for {id:?}"))?;
        writeln!(out, "// id: {}", entry.id)?;
        writeln!(out, "// length: {}", entry.data.get().len())?;
        writeln!(
            out,
            "// modified: {}",
            output::local_timestamp(&entry.modified)
        )?;
        for (key, value) in entry.labels() {
            writeln!(out, "// label {key}:{value}")?;
        }
        out.write_all(output::indent_json(entry.data.get()).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_split_at_the_first_colon() {
        let labels = parse_filters(&["type:snapshot".into(), "path:/a:b".into()]).unwrap();
        assert_eq!(labels["type"], "snapshot");
        assert_eq!(labels["path"], "/a:b");
        assert!(parse_filters(&["nocolon".into()]).is_err());
        assert!(parse_filters(&[":value".into()]).is_err());
    }
}
