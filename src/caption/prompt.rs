//! Prompts are versioned assets: one TOML file per caption style under `prompts/`, built into
//! the binary, and replaceable by a user's own folder (`--prompts DIR`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The caption styles scenedex knows how to read replies for.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// Dense keywords and one factual sentence: made to match search queries.
    Search,
    /// At most 125 characters for screen readers, or DECORATIVE.
    AltText,
    /// A fuller factual description.
    Description,
    /// A JSON object: people, text, setting, and an uncertainty flag.
    Moderation,
}

impl Style {
    pub fn name(self) -> &'static str {
        match self {
            Style::Search => "search",
            Style::AltText => "alt-text",
            Style::Description => "description",
            Style::Moderation => "moderation",
        }
    }

    fn builtin(self) -> &'static str {
        match self {
            Style::Search => include_str!("../../prompts/search.toml"),
            Style::AltText => include_str!("../../prompts/alt-text.toml"),
            Style::Description => include_str!("../../prompts/description.toml"),
            Style::Moderation => include_str!("../../prompts/moderation.toml"),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Prompt {
    pub id: String,
    pub version: u32,
    pub max_tokens: u32,
    pub system: String,
    pub user: String,
    /// The reply must be a JSON object (the moderation style).
    #[serde(default)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{path}: cannot read the prompt: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid prompt file: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Prompt {
    /// The prompt for `style`: from `dir/<style>.toml` when a folder is given, else built in.
    pub fn load(style: Style, dir: Option<&Path>) -> Result<Prompt, PromptError> {
        let Some(dir) = dir else {
            return Ok(toml::from_str(style.builtin()).expect("built-in prompts parse"));
        };
        let path = dir.join(format!("{}.toml", style.name()));
        let text = std::fs::read_to_string(&path).map_err(|source| PromptError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| PromptError::Parse {
            path,
            message: e.message().to_string(),
        })
    }

    /// `id@version`, recorded with every caption this prompt makes.
    pub fn tag(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    /// The system text, with the answer language when one is asked for. The reply markers
    /// stay in English, because they are what scenedex reads.
    pub fn system_for(&self, lang: Option<&str>) -> String {
        match lang {
            None => self.system.trim().to_string(),
            Some(code) => format!(
                "{}\nWrite your answer directly in the language with code \"{code}\". Keep the words \
                 UNCERTAIN and DECORATIVE, and JSON field names, in English.",
                self.system.trim()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_prompt_parses_and_names_its_style() {
        for style in [
            Style::Search,
            Style::AltText,
            Style::Description,
            Style::Moderation,
        ] {
            let prompt = Prompt::load(style, None).unwrap();
            assert_eq!(prompt.id, style.name());
            assert!(prompt.version >= 1);
            assert_eq!(prompt.json, style == Style::Moderation);
            assert!(prompt.system.contains("Guessing is worse"), "{}", prompt.id);
        }
    }

    #[test]
    fn a_user_folder_replaces_the_builtin_prompt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("search.toml"),
            "id = \"mine\"\nversion = 7\nmax_tokens = 10\nsystem = \"s\"\nuser = \"u\"\n",
        )
        .unwrap();
        let prompt = Prompt::load(Style::Search, Some(dir.path())).unwrap();
        assert_eq!(prompt.tag(), "mine@7");
        let missing = Prompt::load(Style::AltText, Some(dir.path())).unwrap_err();
        assert!(missing.to_string().contains("alt-text.toml"));
    }
}
