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
fn hostile_book(image: &image::RgbImage) -> Option<String> {
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
