//! The caption cache's answers kept in the index on a Qdrant server, so that machines with
//! caches of their own pay once for a picture they all meet. Each answer is a point without
//! vectors (`record = "answer"`), keyed like the cache; a picture being asked about has a short
//! claim, a lease like a file's, so two machines meeting it at once pay once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::lease::{Claim, Leases, Owner};
use crate::caption::cache::Shared;
use crate::caption::Caption;
use crate::store::{answer_id, Point, VectorStore};

/// `record` payload value of a shared answer.
pub const ANSWER: &str = "answer";

pub struct Answers {
    store: Arc<dyn VectorStore>,
    host: String,
    /// Each claim held, by key, with its owner: one of its own, so that two files of this
    /// process meeting one picture wait for each other as two machines do.
    claims: Mutex<HashMap<String, Owner>>,
    /// How long a claim on a picture lasts: the run's lease, as a file's claim does, so a
    /// machine that stops holding one delays the others no longer than a file's.
    claim: Duration,
    warned: AtomicBool,
}

impl Answers {
    pub fn new(store: Arc<dyn VectorStore>, host: &str, claim: Duration) -> Answers {
        Answers {
            store,
            host: host.to_string(),
            claims: Mutex::new(HashMap::new()),
            claim,
            warned: AtomicBool::new(false),
        }
    }

    fn leases(&self, owner: Owner) -> Leases<'_> {
        Leases::new(self.store.as_ref(), owner, self.claim)
    }

    /// Says once that shared answers cannot be reached: the run goes on, paying where it must.
    fn warn(&self, e: impl std::fmt::Display) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!("warning: cannot reach the answers shared in the index ({e}); pictures other machines answered may be paid for again");
        }
    }
}

/// The claim's name among the leases: never a file's fingerprint (32 hex digits).
fn claim_name(key: &str) -> String {
    format!("answer-{key}")
}

impl Shared for Answers {
    fn get(&self, key: &str) -> Option<Caption> {
        let found = match self.store.get(&[answer_id(key)]) {
            Ok(found) => found,
            Err(e) => {
                self.warn(e);
                return None;
            }
        };
        let payload = found.into_iter().next()?.payload;
        (payload.get("key")?.as_str()? == key)
            .then(|| serde_json::from_value(payload.get("caption")?.clone()).ok())
            .flatten()
    }

    fn put(&self, key: &str, caption: &Caption) {
        let payload = json!({"record": ANSWER, "key": key, "caption": caption});
        let Value::Object(payload) = payload else {
            unreachable!("an object");
        };
        let point = Point {
            id: answer_id(key),
            vectors: None,
            payload,
        };
        if let Err(e) = self.store.upsert(vec![point]) {
            self.warn(e);
        }
    }

    fn claim(&self, key: &str) -> bool {
        let owner = Owner::this_process(&self.host);
        match self.leases(owner.clone()).claim(&claim_name(key)) {
            Ok(Claim::Won) => {
                let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
                claims.insert(key.to_string(), owner);
                true
            }
            Ok(Claim::Held(_)) => false,
            Err(e) => {
                self.warn(e);
                true
            }
        }
    }

    fn release(&self, key: &str) {
        let owner = {
            let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
            claims.remove(key)
        };
        let Some(owner) = owner else {
            return;
        };
        if let Err(e) = self.leases(owner).release(&claim_name(key)) {
            self.warn(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caption::cache::Cache;
    use crate::caption::run::{caption_all, Settings};
    use crate::caption::{
        BoxFuture, CaptionError, Captioner, Encoded, Prompt, Reply, Request, Style,
    };
    use crate::store::EdgeStore;
    use std::sync::atomic::AtomicUsize;

    /// Counts what it is asked; answers slowly, as a model does. It stands in for the paid
    /// service only: the sharing under test is ours.
    struct Counting(AtomicUsize);

    impl Captioner for Counting {
        fn backend(&self) -> &str {
            "openai"
        }
        fn model(&self) -> &str {
            "m"
        }
        fn caption(&self, _: &Request) -> Result<Reply, CaptionError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            Ok(Reply {
                text: "A station ident: a globe turning.".into(),
                usage: Default::default(),
            })
        }
        fn image_tokens(&self, _: u32, _: u32) -> u64 {
            1
        }
        fn caption_future<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a> {
            Box::pin(std::future::ready(self.caption(&request)))
        }
    }

    fn picture(bytes: &[u8]) -> Encoded {
        Encoded {
            jpeg: bytes.to_vec(),
            width: 2,
            height: 2,
        }
    }

    #[test]
    fn issue25_machines_with_caches_of_their_own_pay_once_for_a_picture_they_all_meet() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn VectorStore> =
            Arc::new(EdgeStore::open(&dir.path().join("index"), Some(("m", 4)), true).unwrap());
        let prompt = Prompt::load(Style::Search, None).unwrap();
        let settings = Settings {
            style: Style::Search,
            prompt: &prompt,
            lang: None,
            detail: "low",
            concurrency: 2,
        };
        let captioner = Counting(AtomicUsize::new(0));
        let machines: Vec<Cache> = ["a", "b", "c"]
            .iter()
            .map(|host| {
                let cache = Cache::open(&dir.path().join(format!("cache-{host}"))).unwrap();
                let claim = Duration::from_secs(60);
                cache.share(Box::new(Answers::new(store.clone(), host, claim)));
                cache
            })
            .collect();
        let card = [picture(b"ident"), picture(b"scene of a")];
        let card = &card;
        // Machines a and b meet the card at the same moment; c meets it later.
        std::thread::scope(|scope| {
            for cache in &machines[..2] {
                let (captioner, settings) = (&captioner, &settings);
                scope.spawn(move || {
                    let (outcomes, _) =
                        caption_all(&card[..1], captioner, settings, Some(cache), &|| {});
                    assert!(outcomes[0].caption.is_ok());
                });
            }
        });
        assert_eq!(
            captioner.0.load(Ordering::SeqCst),
            1,
            "paid once between a and b"
        );
        let (outcomes, totals) =
            caption_all(card, &captioner, &settings, Some(&machines[2]), &|| {});
        assert_eq!(totals.calls, 1, "c pays only for its own scene");
        assert_eq!(totals.cache_hits, 1);
        assert_eq!(
            outcomes[0].caption.as_ref().unwrap().text,
            "A station ident: a globe turning."
        );
        assert_eq!(captioner.0.load(Ordering::SeqCst), 2);
    }
}
