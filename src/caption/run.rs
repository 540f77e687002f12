//! Captioning many pictures: the cache first, identical pictures asked about once, several
//! requests in flight, and a moderation reply that is not the JSON asked for tried once more.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::cache::{Cache, KeyParts};
use super::{
    read_reply, Caption, CaptionError, Captioner, Encoded, Kind, Prompt, Reply, Request, Style,
    Usage,
};

/// What to ask, and how.
pub struct Settings<'a> {
    pub style: Style,
    pub prompt: &'a Prompt,
    pub lang: Option<&'a str>,
    /// Anything else that changes the answer for the same picture (OpenAI's detail).
    pub detail: &'a str,
    pub concurrency: usize,
}

#[derive(Debug)]
pub struct Outcome {
    pub caption: Result<Caption, CaptionError>,
    pub cached: bool,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Totals {
    /// Requests that reached the backend's `caption` (retries inside one are not counted).
    pub calls: u64,
    pub cache_hits: u64,
    pub failures: u64,
    pub usage: Usage,
}

/// Captions every picture; outcomes come back in the order of `pictures`.
pub fn caption_all(
    pictures: &[Encoded],
    captioner: &dyn Captioner,
    settings: &Settings,
    cache: Option<&Cache>,
    on_done: &(dyn Fn() + Sync),
) -> (Vec<Outcome>, Totals) {
    let keys: Vec<String> = pictures
        .iter()
        .map(|p| key(p, captioner, settings))
        .collect();
    // The first picture with each key does the work; the others take its answer.
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        first_of.entry(key).or_insert(i);
    }
    let firsts: Vec<usize> = (0..pictures.len())
        .filter(|&i| first_of[keys[i].as_str()] == i)
        .collect();
    let results: Mutex<Vec<Option<Outcome>>> =
        Mutex::new((0..pictures.len()).map(|_| None).collect());
    let totals = Mutex::new(Totals::default());
    let done = |i: usize, outcome: Outcome| {
        results
            .lock()
            .expect("no worker panics")
            .get_mut(i)
            .expect("in range")
            .replace(outcome);
        on_done();
    };
    let job = Job {
        pictures,
        keys: &keys,
        captioner,
        settings,
        cache,
        totals: &totals,
    };
    let shared = cache.and_then(Cache::shared);
    let mut left = firsts;
    while !left.is_empty() {
        // Pictures another machine is asking about now wait for its answer, or its claim.
        let (mine, theirs) = match shared {
            Some(shared) => claim(&left, &keys, cache, shared),
            None => (left.into_iter().map(|i| (i, false)).collect(), Vec::new()),
        };
        let claimed: HashSet<usize> = mine.iter().filter(|m| m.1).map(|m| m.0).collect();
        let mine: Vec<usize> = mine.into_iter().map(|m| m.0).collect();
        std::thread::scope(|scope| {
            // Each answer paid for is shared, and its claim given up, as soon as it comes: from
            // a thread of its own, as a request future may not block on the server.
            let (send, answered) = std::sync::mpsc::channel::<(usize, Option<Caption>)>();
            if let Some(shared) = shared {
                let keys = &keys;
                scope.spawn(move || {
                    for (i, caption) in answered {
                        if let Some(caption) = caption {
                            shared.put(&keys[i], &caption);
                        }
                        shared.release(&keys[i]);
                    }
                });
            }
            let sharing = |i: usize, outcome: Outcome| {
                if claimed.contains(&i) {
                    let paid = match (&outcome.caption, outcome.cached) {
                        (Ok(caption), false) => Some(caption.clone()),
                        _ => None,
                    };
                    let _ = send.send((i, paid));
                }
                done(i, outcome);
            };
            match captioner.waits_on_network() {
                true => job.in_flight(&mine, &sharing),
                false => job.on_threads(&mine, &sharing),
            }
            // Claims of pictures a Ctrl-C left unasked.
            let results = results.lock().expect("no worker panics");
            for &i in claimed.iter().filter(|&&i| results[i].is_none()) {
                let _ = send.send((i, None));
            }
        });
        if theirs.is_empty() || crate::stop::requested() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        left = theirs;
    }
    let mut results = results.into_inner().expect("no worker panics");
    // Copies first, while every first's answer is still in place; then the firsts move out.
    let copies: Vec<Option<Outcome>> = (0..pictures.len())
        .map(|i| {
            let first = first_of[keys[i].as_str()];
            (first != i).then(|| {
                on_done();
                // A first left undone was stopped by Ctrl-C.
                results[first]
                    .as_ref()
                    .map_or_else(interrupted, clone_outcome)
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = copies
        .into_iter()
        .enumerate()
        .map(|(i, copy)| copy.unwrap_or_else(|| results[i].take().unwrap_or_else(interrupted)))
        .collect();
    let mut totals = totals.into_inner().expect("no worker panics");
    totals.failures = outcomes.iter().filter(|o| o.caption.is_err()).count() as u64;
    (outcomes, totals)
}

/// Splits pictures into those this machine asks about, each with whether it holds a claim on
/// it (an answer found in the cache needs none), and those another machine holds.
fn claim(
    pictures: &[usize],
    keys: &[String],
    cache: Option<&Cache>,
    shared: &dyn super::cache::Shared,
) -> (Vec<(usize, bool)>, Vec<usize>) {
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for &i in pictures {
        let key = &keys[i];
        if cache.is_some_and(|c| c.get(key).is_some()) {
            mine.push((i, false));
        } else if shared.claim(key) {
            mine.push((i, true));
        } else {
            theirs.push(i);
        }
    }
    (mine, theirs)
}

/// What captioning would cost, with nothing spent: cached pictures are free, a picture seen
/// before counts once, and output is counted at the prompt's token limit, so it is an upper
/// bound.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Estimate {
    pub frames: u64,
    pub cached: u64,
    pub to_caption: u64,
    pub input_tokens: u64,
    pub output_tokens_at_most: u64,
}

impl Estimate {
    /// Adds these pictures; `seen` holds the keys already counted (across files).
    pub fn add(
        &mut self,
        pictures: &[Encoded],
        captioner: &dyn Captioner,
        settings: &Settings,
        cache: Option<&Cache>,
        seen: &mut std::collections::HashSet<String>,
    ) {
        let text_tokens =
            (settings.prompt.system.len() + settings.prompt.user.len()).div_ceil(4) as u64;
        for picture in pictures {
            self.frames += 1;
            let key = key(picture, captioner, settings);
            if cache.is_some_and(|c| c.get(&key).is_some()) {
                self.cached += 1;
            } else if seen.insert(key) {
                self.to_caption += 1;
                // A tagger reads no prompt and counts no tokens.
                if !captioner.makes_tags() {
                    self.input_tokens +=
                        captioner.image_tokens(picture.width, picture.height) + text_tokens;
                    self.output_tokens_at_most += u64::from(settings.prompt.max_tokens);
                }
            }
        }
    }

    pub fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens_at_most,
        }
    }
}

/// The cache key of a picture for this captioner and these settings.
pub fn key(picture: &Encoded, captioner: &dyn Captioner, settings: &Settings) -> String {
    Cache::key(&KeyParts {
        jpeg: &picture.jpeg,
        backend: captioner.backend(),
        model: captioner.model(),
        prompt: &settings.prompt.tag(),
        lang: settings.lang,
        detail: settings.detail,
    })
}

/// What every request of one `caption_all` shares.
struct Job<'a> {
    pictures: &'a [Encoded],
    keys: &'a [String],
    captioner: &'a dyn Captioner,
    settings: &'a Settings<'a>,
    cache: Option<&'a Cache>,
    totals: &'a Mutex<Totals>,
}

impl Job<'_> {
    /// A backend that computes: `settings.concurrency` threads at once.
    fn on_threads(&self, firsts: &[usize], done: &(dyn Fn(usize, Outcome) + Sync)) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..self.settings.concurrency.clamp(1, firsts.len().max(1)) {
                scope.spawn(|| loop {
                    // After Ctrl-C no new request is sent: what is not asked is not paid for.
                    if crate::stop::requested() {
                        break;
                    }
                    let Some(&i) = firsts.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    done(i, self.one(i));
                });
            }
        });
    }

    /// A backend that waits on the network: `settings.concurrency` requests in flight on the
    /// shared runtime, driven from this thread, with no thread of their own.
    fn in_flight(&self, firsts: &[usize], done: &(dyn Fn(usize, Outcome) + Sync)) {
        use futures_util::stream::{self, StreamExt};
        crate::runtime::block_on(
            stream::iter(firsts.iter().copied())
                // After Ctrl-C no new request is sent: what is not asked is not paid for.
                .take_while(|_| std::future::ready(!crate::stop::requested()))
                .map(|i| async move { (i, self.one_future(i).await) })
                .buffer_unordered(self.settings.concurrency.max(1))
                .for_each(|(i, outcome)| {
                    done(i, outcome);
                    std::future::ready(())
                }),
        );
    }

    /// This machine's cache only: a request may be a future on the shared runtime, where no
    /// blocking call to a server may run; `claim` brought shared answers here beforehand.
    fn hit(&self, i: usize) -> Option<Outcome> {
        let caption = self.cache?.get_local(&self.keys[i])?;
        self.totals.lock().expect("no worker panics").cache_hits += 1;
        Some(Outcome {
            caption: Ok(caption),
            cached: true,
        })
    }

    fn one(&self, i: usize) -> Outcome {
        if let Some(hit) = self.hit(i) {
            return hit;
        }
        // Another file in flight may be asking about the same picture: wait for its answer.
        let _asking = self.cache.map(|c| c.ask(&self.keys[i]));
        if let Some(hit) = self.hit(i) {
            return hit;
        }
        let mut caption = Err(CaptionError::Interrupted);
        for attempt in 0..self.attempts() {
            let reply = self.captioner.caption(&self.request(i));
            caption = self.read(reply);
            if !self.again(attempt, &caption) {
                break;
            }
        }
        self.keep(i, caption)
    }

    async fn one_future(&self, i: usize) -> Outcome {
        if let Some(hit) = self.hit(i) {
            return hit;
        }
        let _asking = match self.cache {
            Some(cache) => Some(cache.ask_async(&self.keys[i]).await),
            None => None,
        };
        if let Some(hit) = self.hit(i) {
            return hit;
        }
        let mut caption = Err(CaptionError::Interrupted);
        for attempt in 0..self.attempts() {
            let reply = self.captioner.caption_future(self.request(i)).await;
            caption = self.read(reply);
            if !self.again(attempt, &caption) {
                break;
            }
        }
        self.keep(i, caption)
    }

    fn request(&self, i: usize) -> Request<'_> {
        let picture = &self.pictures[i];
        Request {
            jpeg: &picture.jpeg,
            width: picture.width,
            height: picture.height,
            prompt: self.settings.prompt,
            lang: self.settings.lang,
        }
    }

    /// One question, and for the JSON style one more if the first answer is not valid JSON.
    fn attempts(&self) -> usize {
        if self.settings.prompt.json {
            2
        } else {
            1
        }
    }

    fn again(&self, attempt: usize, caption: &Result<Caption, CaptionError>) -> bool {
        attempt + 1 < self.attempts() && matches!(caption, Err(CaptionError::BadJson { .. }))
    }

    /// Counts a reply and reads it as the style asks.
    fn read(&self, reply: Result<Reply, CaptionError>) -> Result<Caption, CaptionError> {
        let (captioner, settings) = (self.captioner, self.settings);
        let mut t = self.totals.lock().expect("no worker panics");
        t.calls += 1;
        let reply = reply?;
        t.usage += reply.usage;
        drop(t);
        // A classifier answers no prompt: its words are tags, whatever the style asked.
        let tags = captioner.makes_tags();
        let (text, kind, moderation) = match tags {
            true => (reply.text.clone(), Kind::Tags, None),
            false => read_reply(settings.style, &reply.text, captioner.backend())?,
        };
        Ok(Caption {
            text,
            kind,
            moderation,
            backend: captioner.backend().to_string(),
            model: captioner.model().to_string(),
            prompt: if tags {
                "none".into()
            } else {
                settings.prompt.tag()
            },
            lang: settings.lang.map(str::to_string),
            usage: reply.usage,
        })
    }

    fn keep(&self, i: usize, caption: Result<Caption, CaptionError>) -> Outcome {
        if let (Ok(caption), Some(cache)) = (&caption, self.cache) {
            // A cache that cannot be written costs money later, not correctness now. Shared
            // with other machines by `caption_all`, off the runtime.
            if let Err(e) = cache.put_local(&self.keys[i], caption) {
                eprintln!(
                    "warning: cannot write to the caption cache {}: {e}",
                    cache.dir().display()
                );
            }
        }
        Outcome {
            caption,
            cached: false,
        }
    }
}

fn interrupted() -> Outcome {
    Outcome {
        caption: Err(CaptionError::Interrupted),
        cached: false,
    }
}

fn clone_outcome(outcome: &Outcome) -> Outcome {
    Outcome {
        caption: outcome.caption.clone(),
        cached: outcome.caption.is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caption::{Reply, Request};

    /// Counts the pictures it is asked about and names each by its first byte.
    struct Counting(AtomicUsize);

    impl Captioner for Counting {
        fn backend(&self) -> &str {
            "counting"
        }
        fn model(&self) -> &str {
            "m"
        }
        fn caption(&self, request: &Request) -> Result<Reply, CaptionError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Reply {
                text: format!("picture {}", request.jpeg[0]),
                usage: Usage::default(),
            })
        }
        fn image_tokens(&self, _: u32, _: u32) -> u64 {
            0
        }
        fn makes_tags(&self) -> bool {
            true
        }
    }

    fn picture(byte: u8) -> Encoded {
        Encoded {
            jpeg: vec![byte; 4],
            width: 1,
            height: 1,
        }
    }

    #[test]
    fn a_picture_seen_again_later_is_asked_about_once_regression_repeated_picture_panic() {
        let prompt = Prompt {
            id: "search".into(),
            version: 1,
            max_tokens: 10,
            system: String::new(),
            user: String::new(),
            json: false,
        };
        let settings = Settings {
            style: Style::Search,
            prompt: &prompt,
            lang: None,
            detail: "",
            concurrency: 2,
        };
        let captioner = Counting(AtomicUsize::new(0));
        let pictures = [picture(1), picture(2), picture(1), picture(1)];
        let (outcomes, totals) = caption_all(&pictures, &captioner, &settings, None, &|| {});
        let texts: Vec<String> = outcomes
            .iter()
            .map(|o| o.caption.as_ref().unwrap().text.clone())
            .collect();
        assert_eq!(texts, ["picture 1", "picture 2", "picture 1", "picture 1"]);
        assert_eq!(captioner.0.load(Ordering::SeqCst), 2);
        assert_eq!((totals.calls, totals.failures), (2, 0));
    }
}
