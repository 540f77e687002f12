//! The keyword half of hybrid search, computed the same way for either store: Qdrant's
//! multilingual tokenizer (charabia, with jieba's bundled dictionary for Chinese and vaporetto's
//! bundled model for Japanese; folded case and accents), so a run of Chinese characters is
//! words, not one token. English text is stemmed and its stop words dropped; text in another
//! language is not stemmed, and every language's stop words are dropped from it. Numbers are
//! words too. A query's language is not known: it carries both forms of its words, and each
//! finds the text it was made for.

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::SparseVector;

/// How an index's words were made: 0 by qdrant-edge's default (the word tokenizer, English
/// stemming and stop words, for every text), before issue 23; 1 as above. An index keeps
/// the way it was made, so its queries find the words it holds.
pub const CURRENT: u32 = 1;

pub struct Words {
    english: EdgeBm25,
    /// None for an index made before issue 23.
    any: Option<EdgeBm25>,
    /// Numbers, which the multilingual tokenizer leaves out ("Gate 23", "2024").
    numbers: Option<EdgeBm25>,
}

impl Words {
    /// The words of an index made the way `version` says (`CURRENT` for a new one).
    pub fn new(version: u32) -> Result<Words, String> {
        if version == 0 {
            let legacy = EdgeBm25::new(EdgeBm25Config::default()).map_err(|e| e.to_string())?;
            return Ok(Words {
                english: legacy,
                any: None,
                numbers: None,
            });
        }
        let make = |tokenizer: &str, language: &str, stopwords: &[&str]| {
            let config = serde_json::json!({
                "tokenizer": tokenizer,
                "language": language,
                "stopwords": {"languages": stopwords},
            });
            let config: EdgeBm25Config =
                serde_json::from_value(config).map_err(|e| e.to_string())?;
            EdgeBm25::new(config).map_err(|e| e.to_string())
        };
        // Other languages' lists hold English words ("dog" is Danish for "but"), so English
        // text drops English stop words only; text in another language drops every
        // language's, as "ein" or "la" shared with a query is no match. "chinese" is a
        // language without a stemmer: its words are kept as written.
        Ok(Words {
            english: make("multilingual", "english", &["english"])?,
            any: Some(make("multilingual", "chinese", &STOPWORD_LANGUAGES)?),
            numbers: Some(make("word", "chinese", &[])?),
        })
    }

    /// A stored text's words; `lang` is the language it was written or spoken in (None for a
    /// caption written in the default, English).
    pub fn document(&self, text: &str, lang: Option<&str>) -> SparseVector {
        let words = match (&self.any, is_english(lang)) {
            (Some(any), false) => any.embed_document(text),
            _ => self.english.embed_document(text),
        };
        match &self.numbers {
            Some(numbers) => merged(words, numbers.embed_document(&numbers_of(text))),
            None => words,
        }
    }

    /// A query's words, both as English text and as any other language's, and its numbers.
    pub fn query(&self, text: &str) -> SparseVector {
        let mut indices = self.english.embed_query(text).indices;
        if let Some(any) = &self.any {
            indices.extend(any.embed_query(text).indices);
        }
        if let Some(numbers) = &self.numbers {
            indices.extend(numbers.embed_query(&numbers_of(text)).indices);
        }
        indices.sort_unstable();
        indices.dedup();
        let values = vec![1.0; indices.len()];
        SparseVector { indices, values }
    }
}

/// The runs of digits in `text`, as words.
fn numbers_of(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_numeric()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Two sparse vectors as one, sorted by index.
fn merged(a: SparseVector, b: SparseVector) -> SparseVector {
    let mut pairs: Vec<(u32, f32)> = a.indices.into_iter().zip(a.values).collect();
    pairs.extend(b.indices.into_iter().zip(b.values));
    pairs.sort_by_key(|p| p.0);
    let mut out = SparseVector {
        indices: Vec::with_capacity(pairs.len()),
        values: Vec::with_capacity(pairs.len()),
    };
    for (index, value) in pairs {
        match out.indices.last() {
            Some(&last) if last == index => *out.values.last_mut().expect("as many") += value,
            _ => {
                out.indices.push(index);
                out.values.push(value);
            }
        }
    }
    out
}

/// Every language Qdrant has a stop word list for.
const STOPWORD_LANGUAGES: [&str; 30] = [
    "arabic",
    "azerbaijani",
    "basque",
    "bengali",
    "catalan",
    "chinese",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hebrew",
    "hinglish",
    "hungarian",
    "indonesian",
    "italian",
    "japanese",
    "kazakh",
    "nepali",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "slovene",
    "spanish",
    "swedish",
    "tajik",
    "turkish",
];

fn is_english(lang: Option<&str>) -> bool {
    let Some(lang) = lang else { return true };
    let lang = lang.to_ascii_lowercase();
    lang == "en" || lang.starts_with("en-") || lang.starts_with("en_") || lang == "english"
}

/// The language a point's payload says its text is in.
pub fn lang_of(payload: &serde_json::Map<String, serde_json::Value>) -> Option<&str> {
    payload.get("lang").and_then(serde_json::Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(words: &Words, query: &str, text: &str, lang: Option<&str>) -> usize {
        let q = words.query(query).indices;
        let d = words.document(text, lang).indices;
        q.iter().filter(|i| d.contains(i)).count()
    }

    #[test]
    fn issue23_chinese_is_words_not_one_token() {
        let words = Words::new(CURRENT).unwrap();
        // 游泳池 (swimming pool) inside a longer sentence is found by itself.
        assert!(shared(&words, "游泳池", "一只狗跳进了游泳池里", Some("zh")) >= 1);
        assert!(
            words
                .document("一只狗跳进了游泳池里", Some("zh"))
                .indices
                .len()
                >= 3
        );
    }

    #[test]
    fn issue23_japanese_arabic_cyrillic_greek_and_accents_match_their_words() {
        let words = Words::new(CURRENT).unwrap();
        assert!(shared(&words, "プール", "犬がプールに飛び込む", Some("ja")) >= 1);
        assert!(shared(&words, "السباحة", "كلب يقفز في حمام السباحة", Some("ar")) >= 1);
        assert!(shared(&words, "бассейн", "Собака прыгает в бассейн", Some("ru")) >= 1);
        assert!(shared(&words, "πισίνα", "Ο σκύλος πηδά στην πισίνα", Some("el")) >= 1);
        // Folded: a query typed without accents finds the accented word, and case is no matter.
        assert!(shared(&words, "munchen", "Der Zug nach München", Some("de")) >= 1);
    }

    #[test]
    fn issue23_function_words_of_any_language_are_no_match() {
        let words = Words::new(CURRENT).unwrap();
        // "ein", "in", "einen" are not words a German caption shares with a German query
        // about something else.
        let query = "Ein Hund springt in einen Pool";
        let caption = "Ein Zug fährt in einen kleinen Bahnhof ein.";
        assert_eq!(shared(&words, query, caption, Some("de")), 0);
        assert!(shared(&words, query, "A dog jumps into the pool", None) >= 1);
        // English text keeps its words that are stop words elsewhere ("dog": Danish "but").
        assert!(shared(&words, "dog", "A dog jumps into the pool", None) >= 1);
    }

    #[test]
    fn issue23_numbers_are_words_too() {
        let words = Words::new(CURRENT).unwrap();
        assert_eq!(
            shared(
                &words,
                "gate 23",
                "Boarding at Gate 23 closes at 10:40",
                None
            ),
            2
        );
        assert_eq!(shared(&words, "2024", "Die Wahl 2024", Some("de")), 1);
    }

    #[test]
    fn an_index_made_before_issue_23_keeps_its_words() {
        let old = Words::new(0).unwrap();
        let made = old.document("A dog jumps into the pool", None);
        // What qdrant-edge's default gave before: the same tokens, stemmed, no stop words.
        let default = EdgeBm25::new(EdgeBm25Config::default()).unwrap();
        assert_eq!(
            made.indices,
            default.embed_document("A dog jumps into the pool").indices
        );
        assert_eq!(
            shared(&old, "jumping dogs", "A dog jumps into the pool", None),
            2
        );
    }

    #[test]
    fn english_is_stemmed_and_other_languages_are_not() {
        let words = Words::new(CURRENT).unwrap();
        assert_eq!(
            shared(&words, "jumping dogs", "A dog jumps into the pool", None),
            2
        );
        // German "Hunde" is not cut by an English stemmer into something else.
        let german = words.document("Hunde springen", Some("de"));
        let as_english = words.document("Hunde springen", None);
        assert_ne!(german.indices, as_english.indices);
        assert!(shared(&words, "Hunde", "Hunde springen", Some("de")) >= 1);
    }
}
