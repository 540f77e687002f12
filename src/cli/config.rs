//! The config file: `$SCENEDEX_CONFIG`, or `~/.config/scenedex/config.toml`. Each setting is the
//! default of the flag of the same name, as its `SCENEDEX_*` environment variable is: a flag
//! beats the environment, which beats the file, which beats the built-in default.
//!
//! ```toml
//! captioner = "openai"
//! model = "gpt-4o-mini"
//! style = "search"
//! concurrency = 4
//! max-gap = 8
//! ```

use std::path::{Path, PathBuf};

use super::Error;

/// The settings a config file may hold: the captioning, sampling, index and search flags. API
/// keys are not among them; `api-key-env` names the variable that holds one, and a Qdrant
/// server's key stays in QDRANT_API_KEY.
const SETTINGS: &[&str] = &[
    "captioner",
    "model",
    "base_url",
    "api_key_env",
    "style",
    "lang",
    "prompts",
    "max_side",
    "jpeg_quality",
    "detail",
    "concurrency",
    "rpm",
    "timeout",
    "retries",
    "cache_dir",
    "price",
    "sample",
    "max_gap",
    "min_gap",
    "min_scene",
    "threshold",
    "dup_distance",
    "color_tolerance",
    "index",
    "embedder",
    "embedding_model",
    "embedding_url",
    "collection",
    "jobs",
    "merge_similarity",
    "max_segment",
    "shards",
    "replicas",
    "lease",
    "prune_after",
    "bind",
    "allow_host",
    "limit",
    "per_file",
    "path",
    "from",
    "to",
    "min_score",
    "thumb_size",
    "batch_size",
    "batch_fallback",
    "poll",
    "settle",
    "rescan",
    "speech",
    "speech_model",
    "speech_url",
    "speech_price",
    "speech_lang",
    "audio_stream",
    "qdrant_url",
    "pad",
    "format",
];

pub fn default_path() -> Option<PathBuf> {
    match std::env::var_os("SCENEDEX_CONFIG") {
        Some(path) => Some(PathBuf::from(path)),
        None => dirs::config_dir().map(|d| d.join("scenedex").join("config.toml")),
    }
}

/// The environment variables the file sets: those it names and the environment does not.
pub fn settings(path: &Path) -> Result<Vec<(String, String)>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Config(format!(
                "{}: cannot read the config file: {e}",
                path.display()
            )))
        }
    };
    Ok(read(path, &text)?
        .into_iter()
        .map(|(name, value)| (variable(&name), value))
        .filter(|(variable, _)| std::env::var_os(variable).is_none())
        .collect())
}

/// The environment variable of a setting (underscores): `SCENEDEX_NAME`, but the Qdrant
/// server's address keeps Qdrant's own name.
fn variable(name: &str) -> String {
    match name {
        "qdrant_url" => "QDRANT_URL".into(),
        _ => format!("SCENEDEX_{}", name.to_uppercase()),
    }
}

/// An options file's settings as flags (`--max-gap 8`), in the config file's format: for
/// `eval --against`.
pub fn flags(path: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::NoInput(format!(
            "{}: cannot read the options file: {e}",
            path.display()
        ))
    })?;
    Ok(read(path, &text)?
        .into_iter()
        .flat_map(|(name, value)| [format!("--{}", name.replace('_', "-")), value])
        .collect())
}

/// The settings of a file, as (name with underscores, value).
fn read(path: &Path, text: &str) -> Result<Vec<(String, String)>, Error> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| Error::Config(syntax_error(path, text, &e)))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let name = key.replace('-', "_");
        if !SETTINGS.contains(&name.as_str()) {
            return Err(Error::Config(format!(
                "{}: unknown setting '{key}' (known: {})",
                path.display(),
                SETTINGS.join(", ").replace('_', "-")
            )));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(Error::Config(format!(
                    "{}: '{key}' must be a string or a number, not {other}",
                    path.display()
                )))
            }
        };
        out.push((name, value));
    }
    Ok(out)
}

/// A TOML error with its line, and the key it is about when it names one.
fn syntax_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return format!("{}: {}", path.display(), e.message());
    };
    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let what = text.get(span).unwrap_or("").trim();
    let message = e.message().trim_end_matches('\n');
    match message {
        "duplicate key" => format!(
            "{}, line {line}: '{what}' is set twice; keep one",
            path.display()
        ),
        _ => format!("{}, line {line}: {message}", path.display()),
    }
}

/// Where a bad `value` of a setting came from when the command line does not hold it: the
/// config file or the environment, for an error about the value to point at.
pub fn origin(
    flag: &str,
    value: &str,
    from_file: &[(String, String)],
    file: &Path,
) -> Option<String> {
    let variable = variable(&flag.replace('-', "_"));
    let on_command_line =
        std::env::args().any(|a| a == format!("--{flag}") || a.starts_with(&format!("--{flag}=")));
    // A short flag (`-n`) is not seen above; a value other than the variable's is the user's.
    if on_command_line || std::env::var(&variable).ok().as_deref() != Some(value) {
        return None;
    }
    Some(match from_file.iter().any(|(name, _)| *name == variable) {
        true => format!("'{flag}' in the config file {}", file.display()),
        false => format!("the environment variable {variable}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// What names one run's own target rather than a setting: a default for it in the file
    /// would write where the user did not say.
    const NOT_SETTINGS: &[&str] = &["out", "against", "conditions", "watch"];
    /// A secret stays out of the file, as API keys do; and `reembed --embedder` names the
    /// model to change to, never a default.
    const NEVER: &[(&str, &str)] = &[("serve", "token"), ("reembed", "embedder")];

    #[test]
    fn issue24_every_option_that_takes_a_value_has_a_variable_and_a_config_name() {
        let mut cli = super::super::Cli::command();
        // Until it is built, clap does not say which arguments take values.
        cli.build();
        let (mut missing, mut checked) = (Vec::new(), 0);
        for command in cli.get_subcommands() {
            for arg in command.get_arguments() {
                let name = arg.get_id().as_str().to_string();
                let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
                if arg.is_positional()
                    || !takes_value
                    || NOT_SETTINGS.contains(&name.as_str())
                    || ["help", "version"].contains(&name.as_str())
                    || NEVER.contains(&(command.get_name(), name.as_str()))
                {
                    continue;
                }
                checked += 1;
                let variable = variable(&name);
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                if env.as_deref() != Some(variable.as_str()) && !name.ends_with("key") {
                    missing.push(format!("{} --{name}: no {variable}", command.get_name()));
                }
                if !SETTINGS.contains(&name.as_str()) && !name.ends_with("key") {
                    missing.push(format!("{} --{name}: not in the file", command.get_name()));
                }
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
        assert!(checked > 100, "only {checked} options looked at");
    }

    #[test]
    fn settings_become_variables_and_unknown_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "model = \"m\"\nmax-gap = 8\nthreshold = 12.5\n").unwrap();
        let mut got = settings(&path).unwrap();
        got.sort();
        assert_eq!(
            got,
            [
                ("SCENEDEX_MAX_GAP".into(), "8".into()),
                ("SCENEDEX_MODEL".into(), "m".into()),
                ("SCENEDEX_THRESHOLD".into(), "12.5".into())
            ]
        );
        std::fs::write(&path, "openai_api_key = \"sk-x\"\n").unwrap();
        let error = settings(&path).unwrap_err().to_string();
        assert!(
            error.contains("unknown setting 'openai_api_key'") && !error.contains("sk-x"),
            "{error}"
        );
        std::fs::write(&path, "style = \"search\"\nmax-gap = 3\nmax-gap = 4\n").unwrap();
        let error = settings(&path).unwrap_err().to_string();
        assert!(
            error.contains("line 3: 'max-gap' is set twice") && error.contains("config.toml"),
            "{error}"
        );
        assert!(settings(&dir.path().join("absent.toml"))
            .unwrap()
            .is_empty());
    }
}
