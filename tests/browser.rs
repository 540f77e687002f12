//! The `serve` page in a real, headless Chromium: searching as you type, playing the scene at
//! its time, keyboard use, a Matroska file of MPEG-4 Part 2 playing too, and hostile captions
//! and file names shown as text. `SCENEDEX_SCREENSHOT=FILE` keeps a picture of the page
//! (scripts/screenshot.sh updates the README's).

mod common;

use std::process::Command;

use common::archive::{stderr, Archive};
use common::browser::Browser;
use common::fixture;
use common::serve::Served;
use common::vlm::{mean_colour, use_scene_book};
use fantoccini::Locator;

const HOSTILE: &str = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>";

/// The archive's pictures, but the red scene's caption carries markup, as a VLM or OCR may
/// return it; set before any archive so that it is this binary's book.
fn hostile_book(image: &image::RgbImage, _prompt: &str) -> Option<String> {
    let (r, g, b) = mean_colour(image);
    Some(if r > g + 60.0 && r > b + 60.0 {
        format!("A white square sits on a bright red background. {HOSTILE}")
    } else if b > r + 60.0 && b > g + 60.0 {
        "A white square on a deep blue background. A name tag reads Kowalczyk.".into()
    } else {
        "Colourful abstract shapes and stripes fill the screen.".into()
    })
}

fn archive_of(files: &[(&str, &str)]) -> Archive {
    use_scene_book(hostile_book);
    let archive = Archive::new(&[]);
    for (fixture_name, name) in files {
        std::fs::copy(fixture(fixture_name), archive.videos.join(name)).unwrap();
    }
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    archive
}

fn serve(archive: &Archive) -> Served {
    let mut command: Command = archive.command(&["serve", "--bind", "127.0.0.1:0"]);
    command.env("XDG_CACHE_HOME", archive.dir.path().join("xdg-cache"));
    Served::start(command)
}

fn open(browser: &Browser, served: &Served) {
    browser
        .runtime
        .block_on(browser.client.goto(&format!("{}/", served.base)))
        .unwrap();
}

fn type_query(browser: &Browser, text: &str) {
    browser.runtime.block_on(async {
        let input = browser
            .client
            .find(Locator::Css("input[type=search]"))
            .await
            .unwrap();
        input.send_keys(text).await.unwrap();
    });
}

fn keys(browser: &Browser, text: &str) {
    browser.runtime.block_on(async {
        let active = browser.client.active_element().await.unwrap();
        active.send_keys(text).await.unwrap();
    });
}

/// Waits for the first `playing` of the video and returns where it stood then.
fn watch_playing(browser: &Browser) {
    browser.js(
        "window.firstPlaying = undefined; const v = document.querySelector('video');
         v.addEventListener('playing', () => { window.firstPlaying = v.currentTime; }, { once: true });",
    );
}

fn played_at(browser: &Browser) -> f64 {
    browser
        .until(
            "return window.firstPlaying === undefined ? null : window.firstPlaying;",
            60,
        )
        .as_f64()
        .unwrap()
}

const ESCAPE: &str = "\u{E00C}";
const ARROW_DOWN: &str = "\u{E015}";
const ENTER: &str = "\u{E007}";

#[test]
fn typing_shows_the_right_thumbnail_first_and_a_click_plays_the_scene_from_its_start() {
    let archive = archive_of(&[("colors.mp4", "colors.mp4"), ("cuts.mp4", "cuts.mp4")]);
    let served = serve(&archive);
    let Some(browser) = Browser::start() else {
        return;
    };
    open(&browser, &served);
    let stats = browser.until(
        "const s = document.querySelector('#stats').textContent; return s || null;",
        30,
    );
    assert!(stats.as_str().unwrap().starts_with("2 files"), "{stats}");
    assert_eq!(
        browser.js("return document.querySelectorAll('video').length;"),
        1
    );

    type_query(&browser, "a white square on a deep blue background");
    let first = browser.until(
        "const h = document.querySelector('.hit'); const img = h && h.querySelector('img');
         return img && img.complete && img.naturalWidth > 0
           ? { path: h.dataset.path, start: h.dataset.start, end: h.dataset.end, thumb: img.getAttribute('src') }
           : null;",
        60,
    );
    assert!(
        first["path"].as_str().unwrap().ends_with("/colors.mp4"),
        "{first}"
    );
    assert_eq!(
        (first["start"].as_str(), first["end"].as_str()),
        (Some("2"), Some("4")),
        "{first}"
    );
    let thumb = served.get(first["thumb"].as_str().unwrap(), &[]);
    let picture = image::load_from_memory(&thumb.body).unwrap().to_rgb8();
    let (r, g, b) = mean_colour(&picture);
    assert!(
        b > r + 60.0 && b > g + 60.0,
        "the first thumbnail is the blue scene: {r} {g} {b}"
    );

    watch_playing(&browser);
    browser.runtime.block_on(async {
        let hit = browser.client.find(Locator::Css(".hit")).await.unwrap();
        hit.click().await.unwrap();
    });
    let at = played_at(&browser);
    assert!(
        (at - 2.0).abs() < 0.5,
        "playback started at {at}, the scene at 2.0"
    );
    assert_eq!(
        browser.js("return document.querySelector('video').paused;"),
        false
    );
    // The scene's range is marked on the timeline: 2-4 s of a 5 s file.
    let range = browser.until(
        "const r = document.querySelector('#range'); const w = parseFloat(r.style.width);
         return w > 0 ? [parseFloat(r.style.left), w] : null;",
        10,
    );
    let (left, width) = (range[0].as_f64().unwrap(), range[1].as_f64().unwrap());
    assert!(
        (left - 40.0).abs() < 3.0 && (width - 40.0).abs() < 3.0,
        "{range}"
    );

    // Captions over the video: the file's track, loaded and shown.
    browser.runtime.block_on(async {
        let toggle = browser
            .client
            .find(Locator::Css("#captions"))
            .await
            .unwrap();
        toggle.click().await.unwrap();
    });
    let cues = browser.until(
        "const t = document.querySelector('video').textTracks[0];
         return t && t.mode === 'showing' && t.cues && t.cues.length ? t.cues.length : null;",
        20,
    );
    assert!(cues.as_u64().unwrap() >= 2, "{cues}");

    // Keyboard: Esc stops, / goes to the search, arrows move between hits, Enter plays.
    keys(&browser, ESCAPE);
    browser.until("return document.querySelector('video').paused;", 10);
    keys(&browser, "/");
    let focused = browser.js("return document.activeElement.matches('input[type=search]');");
    assert_eq!(focused, true);
    keys(&browser, ARROW_DOWN);
    keys(&browser, ARROW_DOWN);
    let selected = browser.js("const s = document.querySelector('.hit.selected');
         return [...document.querySelectorAll('.hit')].indexOf(s);");
    assert_eq!(selected, 1);
    watch_playing(&browser);
    keys(&browser, ENTER);
    let second = browser.js("return document.querySelectorAll('.hit')[1].dataset.start;");
    let second: f64 = second.as_str().unwrap().parse().unwrap();
    let at = played_at(&browser);
    assert!(
        (at - second).abs() < 0.5,
        "Enter played the second hit from {at}, not {second}"
    );

    if let Some(path) = std::env::var_os("SCENEDEX_SCREENSHOT") {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let png = browser
            .runtime
            .block_on(browser.client.screenshot())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

#[test]
fn a_matroska_file_of_mpeg4_part_2_plays_in_the_page_too() {
    let archive = archive_of(&[("formats/colors_mpeg4.mkv", "colors_mpeg4.mkv")]);
    let served = serve(&archive);
    let Some(browser) = Browser::start() else {
        return;
    };
    open(&browser, &served);
    type_query(&browser, "a white square on a deep blue background");
    browser.until("return document.querySelector('.hit') !== null;", 60);
    watch_playing(&browser);
    browser.runtime.block_on(async {
        let hit = browser.client.find(Locator::Css(".hit")).await.unwrap();
        hit.click().await.unwrap();
    });
    let at = played_at(&browser);
    let played = browser.js(
        "const v = document.querySelector('video');
         return { src: v.getAttribute('src'), offset: parseFloat(v.dataset.offset), paused: v.paused,
                  start: parseFloat(document.querySelector('.hit').dataset.start) };",
    );
    assert!(
        played["src"].as_str().unwrap().starts_with("/stretch/"),
        "{played}"
    );
    let wanted = played["start"].as_f64().unwrap() - played["offset"].as_f64().unwrap();
    assert!(
        (at - wanted).abs() < 0.5,
        "played from {at}, the scene at {wanted}: {played}"
    );
    assert_eq!(played["paused"], false, "{played}");
}

#[test]
fn a_caption_and_a_file_name_holding_markup_show_as_text_and_run_nothing() {
    let name = "<img src=x onerror=window.pwned=3>.mp4";
    let archive = archive_of(&[("colors.mp4", name)]);
    let served = serve(&archive);
    let Some(browser) = Browser::start() else {
        return;
    };
    open(&browser, &served);
    type_query(&browser, "a white square on a bright red background");
    let shown = browser.until(
        "const h = document.querySelector('.hit');
         return h ? { caption: h.querySelector('.caption').textContent,
                      file: document.querySelector('.file h2').textContent } : null;",
        60,
    );
    assert!(
        shown["caption"].as_str().unwrap().ends_with(HOSTILE),
        "{shown}"
    );
    assert!(shown["file"].as_str().unwrap().ends_with(name), "{shown}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let page = browser.js(
        "return { pwned: window.pwned === undefined ? null : window.pwned,
                  scripts: document.scripts.length,
                  images: document.querySelectorAll('img').length,
                  hits: document.querySelectorAll('.hit').length };",
    );
    assert_eq!(page["pwned"], serde_json::Value::Null, "{page}");
    assert_eq!(page["scripts"], 1, "only the page's own script: {page}");
    assert_eq!(
        page["images"], page["hits"],
        "one thumbnail per hit, nothing else: {page}"
    );
}

// ---------------------------------------------------------------------------------------------
// The benchmark behind the README's `serve` table: scripts/bench_serve.sh runs it, in release.

/// Milliseconds from a click on the first hit to the video's first `playing`.
fn click_to_first_frame(browser: &Browser) -> f64 {
    browser.js(
        "const v = document.querySelector('video'); v.pause(); v.removeAttribute('src'); v.load();
         window.clickedAt = undefined; window.playingAt = undefined;
         v.addEventListener('playing', () => { window.playingAt = performance.now(); }, { once: true });",
    );
    browser.js("window.clickedAt = performance.now(); document.querySelector('.hit').click();");
    browser
        .until(
            "return window.playingAt === undefined ? null : window.playingAt - window.clickedAt;",
            120,
        )
        .as_f64()
        .unwrap()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn percentile(mut xs: Vec<f64>, p: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

/// A two-minute 1280x720 recording: a pattern, a blue scene from 60 to 90 s, a pattern again.
fn long_recording(dir: &std::path::Path) -> std::path::PathBuf {
    let mp4 = dir.join("recording.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30:d=60"])
        .args(["-f", "lavfi", "-i", "color=c=blue:s=1280x720:r=30:d=30"])
        .args(["-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30:d=30"])
        .args(["-filter_complex", "[1:v]drawbox=x=500+100*sin(t):y=260:w=280:h=200:color=white:t=fill[b];[0:v][b][2:v]concat=n=3:v=1:a=0,format=yuv420p"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "250"])
        .arg(&mp4)
        .status()
        .unwrap();
    assert!(status.success());
    mp4
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap()
}

#[test]
#[ignore = "a benchmark: scripts/bench_serve.sh runs it"]
fn bench_serve() {
    let Some(browser) = Browser::start() else {
        panic!("the benchmark needs chromium and chromedriver: run scripts/setup.sh");
    };
    println!("| what | measured |");
    println!("|---|---|");

    // Time to first frame: a native MP4, and the same recording in Matroska (remuxed on click).
    use_scene_book(hostile_book);
    let archive = Archive::new(&[]);
    let mp4 = long_recording(archive.dir.path());
    std::fs::copy(&mp4, archive.videos.join("recording.mp4")).unwrap();
    let mkv = archive.videos.join("recording.mkv");
    let copied = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&mp4)
        .args(["-c", "copy"])
        .arg(&mkv)
        .status()
        .unwrap();
    assert!(copied.success());
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let served = serve(&archive);
    open(&browser, &served);
    let streams = archive.dir.path().join("xdg-cache/scenedex/streams");
    for (name, path) in [
        ("recording.mp4", "native MP4"),
        ("recording.mkv", "MKV, remuxed"),
    ] {
        let query = "a white square on a deep blue background";
        browser.js(&format!(
            "const i = document.querySelector('input[type=search]'); i.value = {query:?};
             document.querySelector('#path').value = {:?}; i.dispatchEvent(new Event('input'));",
            archive.videos.join(name).display().to_string()
        ));
        browser.until("return document.querySelector('.hit') ? true : null;", 60);
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let _ = std::fs::remove_dir_all(&streams);
            cold.push(click_to_first_frame(&browser));
            warm.push(click_to_first_frame(&browser));
        }
        let start = browser.js("return document.querySelector('.hit').dataset.start;");
        println!(
            "| time to first frame, {path} (scene at {} s of 120 s, 720p), median of 5 | {:.0} ms first click, {:.0} ms again |",
            start.as_str().unwrap(),
            median(cold),
            median(warm)
        );
    }
    drop(served);

    // Search as you type at 100k segments, and the server's memory.
    let index = tempfile::tempdir().unwrap();
    fill_index(index.path(), 100_000);
    let mut command = common::command();
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--index"])
        .arg(index.path());
    let mut served = Served::start(command);
    let pid = served.child.id();
    served.get("/api/search?q=warm+up", &[]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let idle = rss_kib(pid, "VmRSS:");
    open(&browser, &served);
    let mut latencies = Vec::new();
    for n in 0..40 {
        let query = format!("w{} w{} w{}", n * 7 % 5000, n * 13 % 5000, n * 31 % 5000);
        let ms = browser.js(&format!(
            "const i = document.querySelector('input[type=search]'); const hits = document.querySelector('#hits');
             return new Promise((resolve) => {{
               const t0 = performance.now();
               new MutationObserver((_, o) => {{ o.disconnect(); resolve(performance.now() - t0); }})
                 .observe(hits, {{ childList: true }});
               i.value = {query:?}; i.dispatchEvent(new Event('input'));
             }});"
        ));
        latencies.push(ms.as_f64().unwrap());
    }
    println!(
        "| search as you type at 100k segments: keystroke to hits on the page (200 ms of it the debounce), p50 / p95 of 40 | {:.0} / {:.0} ms |",
        median(latencies.clone()),
        percentile(latencies, 0.95)
    );
    let base = served.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..20)
        .map(|w| {
            let (base, stop) = (base.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut done = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let reply = common::serve::get(
                        &base,
                        &format!("/api/search?q=w{}+w{}", w * 17 + done, done * 3),
                        &[],
                    );
                    assert_eq!(reply.status, 200);
                    done += 1;
                }
                done
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(15));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let searches: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let seconds = started.elapsed().as_secs_f64();
    let peak = rss_kib(pid, "VmHWM:");
    println!(
        "| memory of serve at 100k segments: idle / peak under 20 concurrent searches | {:.0} MB / {:.0} MB ({:.0} searches/s) |",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        f64::from(searches) / seconds
    );
    served.stop();
}

/// An index of `n` segments over `n / 100` files, with random vectors and eight-word captions,
/// as the MiniLM model would have built it (its name and size), with records and places.
fn fill_index(dir: &std::path::Path, n: usize) {
    use rand::{Rng, SeedableRng};
    use scenedex::store::files::{put_places, put_record, FileRecord, Place};
    use scenedex::store::{point_id, EdgeStore, Point, VectorStore, Vectors};
    let store = EdgeStore::open(dir, Some((scenedex::embed::MiniLm::NAME, 384)), true).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let files = n / 100;
    for f in 0..files {
        let fingerprint = format!("{f:032x}");
        let points: Vec<Point> = (0..100)
            .map(|s| {
                let mut dense: Vec<f32> = (0..384).map(|_| rng.random::<f32>() - 0.5).collect();
                scenedex::embed::normalize(&mut dense);
                let caption = (0..8)
                    .map(|_| format!("w{}", rng.random_range(0..5000)))
                    .collect::<Vec<_>>()
                    .join(" ");
                let start = s as f64 * 10.0;
                let payload = serde_json::json!({
                    "record": "segment", "fingerprint": fingerprint, "start": start, "end": start + 10.0,
                    "caption": caption, "kind": "description", "frames": [start],
                });
                Point {
                    id: point_id(&fingerprint, start),
                    vectors: Some(Vectors::new(dense, caption)),
                    payload: payload.as_object().unwrap().clone(),
                }
            })
            .collect();
        store.upsert(points).unwrap();
        let record: FileRecord = serde_json::from_value(serde_json::json!({
            "fingerprint": fingerprint, "size": 1, "duration": 1000.0, "frames_sampled": 100,
            "frames_kept": 100, "frames_captioned": 100, "segments": 100, "captioner": "bench/none",
            "prompt": "search@1", "style": "search", "indexed_at": 0, "indexer": "bench",
        }))
        .unwrap();
        put_places(
            &store,
            &[Place {
                fingerprint: fingerprint.clone(),
                host: scenedex::index::lease::host_name(),
                path: format!("/archive/file{f}.mp4"),
                mtime_ns: 0,
                dev: None,
                missing_since: None,
            }],
        )
        .unwrap();
        put_record(&store, &record).unwrap();
    }
    store.optimize().unwrap();
    store.flush().unwrap();
}

#[test]
fn issue24_weaker_hits_fold_into_one_line_and_a_refused_filter_clears_the_hits_in_the_page_s_words()
{
    let archive = archive_of(&[("colors.mp4", "colors.mp4"), ("cuts.mp4", "cuts.mp4")]);
    let served = serve(&archive);
    let Some(browser) = Browser::start() else {
        return;
    };
    open(&browser, &served);
    // One close match (the name tag of the blue scene), the rest weaker.
    type_query(&browser, "a name tag");
    let shown = browser.until(
        "const h = document.querySelector('.hit:not(.weak)');
         const more = document.querySelector('details.weaker');
         return h && more ? {
             summary: more.querySelector('summary').textContent,
             open: more.open,
             weak: more.querySelectorAll('.hit.weak').length,
             visible: [...document.querySelectorAll('.hit')].filter(e => e.checkVisibility()).length,
             strong: document.querySelectorAll('.hit:not(.weak)').length,
             headings: [...document.querySelectorAll('#hits > .file h2')].map(e => e.textContent),
         } : null;",
        60,
    );
    let weak = shown["weak"].as_u64().unwrap();
    assert!(weak > 0, "{shown}");
    assert_eq!(
        shown["summary"],
        format!("{weak} weaker {}", if weak == 1 { "hit" } else { "hits" }),
        "{shown}"
    );
    assert_eq!(shown["open"], false, "{shown}");
    assert_eq!(
        shown["visible"], shown["strong"],
        "weak hits are folded: {shown}"
    );
    let headings: Vec<&str> = shown["headings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    let mut unique = headings.clone();
    unique.dedup();
    assert_eq!(unique, headings, "one heading a file: {shown}");

    // A filter the server refuses: the old hits go, and the note says what to change.
    browser.js(
        "const w = document.querySelector('#where'); w.value = 'colour=red';
         w.dispatchEvent(new Event('change'));",
    );
    let refused = browser.until(
        "const n = document.querySelector('#note');
         return n.className === 'error' ? { note: n.textContent,
             hits: document.querySelectorAll('.hit').length } : null;",
        30,
    );
    assert_eq!(refused["hits"], 0, "{refused}");
    let note = refused["note"].as_str().unwrap();
    assert!(
        note.starts_with("Where: segments have no field 'colour'") && !note.contains("--"),
        "{note}"
    );

    // A moderation field on an index captioned in another style says why nothing matches.
    browser.js(
        "const w = document.querySelector('#where'); w.value = 'contains_people=false';
         w.dispatchEvent(new Event('change'));",
    );
    let note = browser.until(
        "const n = document.querySelector('#note').textContent;
         return n.includes('moderation') ? n : null;",
        30,
    );
    assert!(
        note.as_str()
            .unwrap()
            .contains("no scene in this index has contains_people"),
        "{note}"
    );
}
