//! The keyword half of hybrid search, computed the same way for either store: Qdrant's
//! multilingual tokenizer (charabia, with jieba's bundled dictionary for Chinese and vaporetto's
//! bundled model for Japanese; folded case and accents), so a run of Chinese characters is
//! words, not one token. English text is stemmed and its stop words dropped; text in another
//! language is left as it is. A query's language is not known: it carries both forms of its
//! words, and each finds the text it was made for.

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::SparseVector;

pub struct Words {
    english: EdgeBm25,
    any: EdgeBm25,
}

impl Words {
    pub fn new() -> Result<Words, String> {
        let make = |language: &str, stopwords: &[&str]| {
            let config = serde_json::json!({
                "tokenizer": "multilingual",
                "language": language,
                "stopwords": {"languages": stopwords},
            });
            let config: EdgeBm25Config =
                serde_json::from_value(config).map_err(|e| e.to_string())?;
            EdgeBm25::new(config).map_err(|e| e.to_string())
        };
        // Other languages' lists hold English words ("dog" is Danish for "but"), so English
        // text drops English stop words only; text in another language drops every
        // language's, as "ein" or "la" shared with a query is no match.
        Ok(Words {
            english: make("english", &["english"])?,
            // A language without a stemmer: every word kept as written.
            any: make("chinese", &STOPWORD_LANGUAGES)?,
        })
    }

    /// A stored text's words; `lang` is the language it was written or spoken in (None for a
    /// caption written in the default, English).
    pub fn document(&self, text: &str, lang: Option<&str>) -> SparseVector {
        match is_english(lang) {
            true => self.english.embed_document(text),
            false => self.any.embed_document(text),
        }
    }

    /// A query's words, both as English text and as any other language's.
    pub fn query(&self, text: &str) -> SparseVector {
        let mut indices = self.english.embed_query(text).indices;
        indices.extend(self.any.embed_query(text).indices);
        indices.sort_unstable();
        indices.dedup();
        let values = vec![1.0; indices.len()];
        SparseVector { indices, values }
    }
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
        let words = Words::new().unwrap();
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
        let words = Words::new().unwrap();
        assert!(shared(&words, "プール", "犬がプールに飛び込む", Some("ja")) >= 1);
        assert!(shared(&words, "السباحة", "كلب يقفز في حمام السباحة", Some("ar")) >= 1);
        assert!(shared(&words, "бассейн", "Собака прыгает в бассейн", Some("ru")) >= 1);
        assert!(shared(&words, "πισίνα", "Ο σκύλος πηδά στην πισίνα", Some("el")) >= 1);
        // Folded: a query typed without accents finds the accented word, and case is no matter.
        assert!(shared(&words, "munchen", "Der Zug nach München", Some("de")) >= 1);
    }

    #[test]
    fn issue23_function_words_of_any_language_are_no_match() {
        let words = Words::new().unwrap();
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
    fn english_is_stemmed_and_other_languages_are_not() {
        let words = Words::new().unwrap();
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
