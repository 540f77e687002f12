//! `scenedex serve` over HTTP: what a request can reach, the token, range requests, video made
//! playable, thumbnails made on demand, and an index held by another process.

mod common;

use std::process::Command;

use common::archive::{file_name, stderr, Archive};
use common::fixture;
use common::serve::Served;
use serde_json::Value;

fn serve(archive: &Archive, extra: &[&str]) -> Command {
    let mut command = archive.command(&["serve", "--bind", "127.0.0.1:0"]);
    command
        .args(extra)
        .env("XDG_CACHE_HOME", archive.dir.path().join("xdg-cache"));
    command
}

fn indexed(files: &[&str]) -> Archive {
    let archive = Archive::new(files);
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    archive
}

fn search(served: &Served, query: &str) -> Value {
    let reply = served.get(&format!("/api/search?q={query}&min_score=0"), &[]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    serde_json::from_slice(&reply.body).unwrap()
}

#[test]
fn only_files_the_index_holds_can_be_reached_and_everything_else_is_404() {
    let archive = indexed(&["colors.mp4"]);
    let served = Served::start(serve(&archive, &[]));
    let answer = search(&served, "red+background");
    let hit = &answer["hits"][0];
    let fingerprint = hit["fingerprint"].as_str().unwrap();
    assert!(served.get(&format!("/video/{fingerprint}"), &[]).status == 200);

    // A secret beside the thumbnails, and a link out of the thumbnails folder.
    let secret = archive.dir.path().join("secret.txt");
    std::fs::write(&secret, "private").unwrap();
    let thumbs = archive.index.join("thumbs");
    let inside = thumbs.join(fingerprint);
    std::os::unix::fs::symlink(&secret, inside.join("99999.jpg")).unwrap();
    for path in [
        "/video/../../../../etc/passwd".to_string(),
        "/video/%2Fetc%2Fpasswd".into(),
        "/thumb/..%2F..%2F..%2Fsecret.txt/0".into(),
        format!("/thumb/{fingerprint}/..%2F..%2F..%2Fsecret.txt"),
        format!("/thumb/{fingerprint}/99999"),
        format!("/stretch/{fingerprint}/..%2F..%2Fsecret.txt"),
        "/video/0123456789abcdef0123456789abcdef".into(),
        format!("/track/{}", "a".repeat(32)),
        "/../../secret.txt".into(),
        "/static/../secret.txt".into(),
    ] {
        let reply = served.get(&path, &[]);
        assert_eq!(reply.status, 404, "{path}: {}", reply.text());
        assert!(!reply.text().contains("private"), "{path}");
    }
}

#[test]
fn video_is_served_with_range_requests_and_the_page_with_a_strict_policy() {
    let archive = indexed(&["colors.mp4"]);
    let served = Served::start(serve(&archive, &[]));
    let answer = search(&served, "red+background");
    let video = answer["hits"][0]["url"].as_str().unwrap();
    assert_eq!(answer["hits"][0]["play"], "native");
    let size = std::fs::metadata(fixture("colors.mp4")).unwrap().len();

    // Safari asks for two bytes first, and plays only if it gets exactly those.
    let reply = served.get(video, &[("Range", "bytes=0-1")]);
    assert_eq!(reply.status, 206);
    assert_eq!(reply.body.len(), 2);
    assert_eq!(
        reply.header("content-range"),
        Some(format!("bytes 0-1/{size}"))
    );
    assert_eq!(reply.header("accept-ranges").as_deref(), Some("bytes"));
    let tail = served.get(video, &[("Range", &format!("bytes={}-", size - 100))]);
    assert_eq!((tail.status, tail.body.len()), (206, 100));
    let whole = std::fs::read(fixture("colors.mp4")).unwrap();
    assert_eq!(tail.body, whole[whole.len() - 100..]);

    let page = served.get("/", &[]);
    assert_eq!(page.status, 200);
    let policy = page.header("content-security-policy").unwrap();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("script-src 'self'"),
        "{policy}"
    );
    assert!(
        !page.text().contains("<script>"),
        "no inline script: the policy forbids it"
    );
    let stats: Value = serde_json::from_slice(&served.get("/api/stats", &[]).body).unwrap();
    assert_eq!(
        (stats["files"].as_u64(), stats["segments"].as_u64()),
        (Some(1), Some(2))
    );
}

#[test]
fn issue24_bind_takes_a_host_name_as_localhost_8731() {
    let archive = indexed(&["colors.mp4"]);
    let mut command = archive.command(&["serve", "--bind", "localhost:0"]);
    command.env("XDG_CACHE_HOME", archive.dir.path().join("xdg-cache"));
    let mut served = Served::start(command);
    assert!(
        served.base.starts_with("http://127.0.0.1:"),
        "localhost is served on its IPv4 address: {}",
        served.base
    );
    let answer = search(&served, "red+background");
    assert!(!answer["hits"].as_array().unwrap().is_empty(), "{answer}");
    served.stop();

    let refused = archive
        .command(&["serve", "--bind", "no-such-host.invalid:8731"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("'no-such-host.invalid' does not resolve"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn a_wide_bind_needs_a_token_and_a_request_without_it_gets_401() {
    let archive = indexed(&["colors.mp4"]);
    let mut command = archive.command(&["serve", "--bind", "0.0.0.0:0"]);
    let refused = command.output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(
        message.starts_with("Error: --bind 0.0.0.0:0 lets other machines see your footage"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");

    const TOKEN: &str = "correct-horse-battery-staple";
    let mut command = archive.command(&["serve", "--bind", "0.0.0.0:0"]);
    command.env("SCENEDEX_TOKEN", TOKEN);
    let mut served = Served::start(command);
    served.base = served.base.replace("0.0.0.0", "127.0.0.1");
    for path in ["/", "/api/search?q=red", "/app.js", "/nothing-here"] {
        let reply = served.get(path, &[]);
        assert_eq!(reply.status, 401, "{path}");
        assert!(!reply.text().contains(TOKEN));
    }
    let wrong = served.get("/api/stats", &[("Authorization", "Bearer correct-horse")]);
    assert_eq!(wrong.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        served
            .get("/api/stats", &[("Authorization", &bearer)])
            .status,
        200
    );
    assert_eq!(
        served
            .get("/api/stats", &[("X-Scenedex-Token", TOKEN)])
            .status,
        200
    );

    let login = served.get(&format!("/?token={TOKEN}"), &[]);
    assert_eq!(login.status, 303);
    assert_eq!(login.header("location").as_deref(), Some("/"));
    let cookie = login.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(served.get("/api/stats", &[("Cookie", pair)]).status, 200);

    assert_eq!(served.stop(), Some(130));
    assert!(!served.stderr.contains(TOKEN), "{}", served.stderr);
}

#[test]
fn issue24_index_beside_serve_writes_through_it_and_the_page_finds_the_new_file() {
    let archive = indexed(&["colors.mp4"]);
    let mut first = Served::start(serve(&archive, &[]));
    // A second page on the same index reads through the first.
    let second = Served::start(serve(&archive, &[]));
    let answer = search(&second, "red+background");
    assert_eq!(file_name(&answer["hits"][0]), "colors.mp4", "{answer}");

    std::fs::copy(fixture("cuts.mp4"), archive.videos.join("cuts.mp4")).unwrap();
    let (output, lines, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        lines
            .iter()
            .any(|l| l["status"] == "indexed" && l["path"].as_str().unwrap().ends_with("cuts.mp4")),
        "{lines:?}"
    );
    let answer = search(&first, "colourful+abstract+shapes");
    assert_eq!(
        file_name(&answer["hits"][0]),
        "cuts.mp4",
        "the page finds it without a restart: {answer}"
    );

    // The holder stops; the other page holds the index itself and goes on answering.
    first.stop();
    let answer = search(&second, "colourful+abstract+shapes");
    assert_eq!(file_name(&answer["hits"][0]), "cuts.mp4", "{answer}");
    assert_eq!(second.get("/api/stats", &[]).status, 200);
}

#[test]
fn mkv_is_remuxed_and_mpeg4_part_2_transcoded_into_mp4_that_ffmpeg_reads_and_kept_for_next_time() {
    let archive = Archive::new(&[]);
    for name in ["colors_h264.mkv", "colors_mpeg4.mkv"] {
        std::fs::copy(
            fixture(&format!("formats/{name}")),
            archive.videos.join(name),
        )
        .unwrap();
    }
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let served = Served::start(serve(&archive, &[]));
    let answer = search(&served, "white+square+on+a+deep+blue+background");
    let mut seen = Vec::new();
    for hit in answer["hits"].as_array().unwrap() {
        let name = file_name(hit).to_string();
        if seen.contains(&name) {
            continue;
        }
        let url = format!(
            "{}?from={}&to={}",
            hit["url"].as_str().unwrap(),
            hit["start"],
            hit["end"]
        );
        let made = served.get(&url, &[]);
        assert_eq!(made.status, 200, "{name}: {}", made.text());
        let made: Value = serde_json::from_slice(&made.body).unwrap();
        let file = archive.dir.path().join(format!("{name}.mp4"));
        let stream = served.get(made["url"].as_str().unwrap(), &[]);
        std::fs::write(&file, &stream.body).unwrap();
        let probe = common::probe_video(
            &file,
            "stream=codec_name:format=format_name,duration",
            "json",
        );
        let probe: Value = serde_json::from_str(&probe).unwrap();
        assert_eq!(probe["streams"][0]["codec_name"], "h264", "{name}: {probe}");
        assert!(probe["format"]["format_name"]
            .as_str()
            .unwrap()
            .contains("mp4"));
        let seconds: f64 = probe["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            seconds >= 2.0,
            "{name}: the scene (2-4 s) is in the stretch: {probe}"
        );
        let how = if name.contains("mpeg4") {
            "transcode"
        } else {
            "remux"
        };
        assert_eq!(
            (hit["play"].as_str(), made["how"].as_str()),
            (Some(how), Some(how)),
            "{name}"
        );
        // The second click reads the stretch from disk: same answer, same bytes.
        let again: Value = serde_json::from_slice(&served.get(&url, &[]).body).unwrap();
        assert_eq!(again, made);
        seen.push(name);
    }
    assert_eq!(seen.len(), 2, "{answer}");
}

#[test]
fn a_thumbnail_made_on_another_machine_is_made_here_on_demand_and_kept() {
    let archive = indexed(&["colors.mp4"]);
    let thumbs = archive.index.join("thumbs");
    std::fs::remove_dir_all(&thumbs).unwrap();
    std::fs::create_dir_all(&thumbs).unwrap();
    let served = Served::start(serve(&archive, &[]));
    let answer = search(&served, "red+background");
    let thumb = answer["hits"][0]["thumb"].as_str().unwrap().to_string();
    let reply = served.get(&thumb, &[]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let picture = image::load_from_memory(&reply.body).unwrap().to_rgb8();
    let (r, g, b) = common::vlm::mean_colour(&picture);
    assert!(
        r > g + 60.0 && r > b + 60.0,
        "the red scene's picture: {r} {g} {b}"
    );
    let kept = thumbs
        .join(thumb.trim_start_matches("/thumb/"))
        .with_extension("jpg");
    assert!(kept.is_file(), "{}", kept.display());
}

#[test]
fn a_hit_this_machine_cannot_play_keeps_its_caption_and_times_and_says_why() {
    let archive = indexed(&["colors.mp4", "cuts.mp4"]);
    std::fs::remove_file(archive.videos.join("colors.mp4")).unwrap();
    let served = Served::start(serve(&archive, &[]));
    let answer = search(&served, "red+background");
    let hit = &answer["hits"][0];
    assert!(
        hit["path"].as_str().unwrap().ends_with("colors.mp4"),
        "{answer}"
    );
    assert!(hit["caption"].as_str().unwrap().contains("red"));
    assert_eq!(
        (hit["start"].as_f64(), hit["end"].as_f64()),
        (Some(0.0), Some(2.0))
    );
    assert_eq!(hit["play"], Value::Null);
    let why = hit["why"].as_str().unwrap();
    assert!(
        why.starts_with("the file is not at ") && why.ends_with("colors.mp4 any more"),
        "{why}"
    );
    drop(served);

    // Another file now stands at an indexed path: it is not served as the one indexed.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(archive.videos.join("cuts.mp4"), b"another file").unwrap();
    let served = Served::start(serve(&archive, &[]));
    let hit = &search(&served, "abstract+shapes")["hits"][0];
    let why = hit["why"].as_str().unwrap();
    assert!(
        why.ends_with("cuts.mp4 changed since it was indexed; run `scenedex index` on it"),
        "{why}"
    );
    let video = format!("/video/{}", hit["fingerprint"].as_str().unwrap());
    assert_eq!(served.get(&video, &[]).status, 404);
    drop(served);

    // Another machine sees the same index, and none of these paths.
    let mut elsewhere = archive.command_on("elsewhere", &["serve", "--bind", "127.0.0.1:0"]);
    elsewhere.env("XDG_CACHE_HOME", archive.dir.path().join("xdg-cache"));
    let served = Served::start(elsewhere);
    let answer = search(&served, "abstract+shapes");
    let hit = &answer["hits"][0];
    assert_eq!(hit["play"], Value::Null);
    assert_eq!(
        hit["why"], "the file is on here, not on this machine",
        "{answer}"
    );
    assert_eq!(
        served
            .get(
                &format!("/video/{}", hit["fingerprint"].as_str().unwrap()),
                &[]
            )
            .status,
        404
    );
}

#[test]
fn the_page_search_takes_the_same_filters_as_the_command_line() {
    let archive = indexed(&["colors.mp4", "cuts.mp4"]);
    let served = Served::start(serve(&archive, &[]));
    let starts = |query: &str| -> Vec<(String, f64)> {
        let answer = search(&served, query);
        answer["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let name = file_name(h).to_string();
                (name, h["start"].as_f64().unwrap())
            })
            .collect()
    };
    let all = starts("white+square");
    assert!(all.iter().any(|(f, _)| f == "cuts.mp4"), "{all:?}");
    let colors = archive.videos.join("colors.mp4");
    let only = starts(&format!("white+square&path={}", colors.display()));
    assert!(
        !only.is_empty() && only.iter().all(|(f, _)| f == "colors.mp4"),
        "{only:?}"
    );
    let late = starts(&format!("white+square&path={}&from=2.5", colors.display()));
    assert_eq!(late, [("colors.mp4".to_string(), 2.0)]);
    // The stand-in answers in the search style: no moderation fields, so nothing has people.
    assert!(starts("white+square&where=contains_people%3Dtrue").is_empty());
    let bad = served.get("/api/search?q=x&where=nonsense", &[]);
    assert_eq!(bad.status, 400, "{}", bad.text());
}

#[test]
fn issue25_a_page_that_rebinds_its_own_name_to_this_server_gets_403() {
    let archive = indexed(&["colors.mp4"]);
    let served = Served::start(serve(&archive, &["--allow-host", "media.lan"]));
    let port = served.base.rsplit(':').next().unwrap().to_string();
    let status = |host: &str, origin: Option<&str>| {
        let mut headers = vec![("Host", host)];
        headers.extend(origin.map(|o| ("Origin", o)));
        served.get("/api/search?q=red", &headers).status
    };
    let evil = format!("evil.example:{port}");
    assert_eq!(status(&evil, None), 403, "a rebound name reads nothing");
    assert_eq!(served.get("/", &[("Host", &evil)]).status, 403);
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("media.lan:{port}"),
    ] {
        assert_eq!(status(&host, None), 200, "{host}");
    }
    let mine = format!("127.0.0.1:{port}");
    let own_page = format!("http://127.0.0.1:{port}");
    assert_eq!(status(&mine, Some(&own_page)), 200);
    assert_eq!(
        status(&mine, Some("http://localhost:3000")),
        403,
        "another local server's page"
    );
    assert_eq!(
        status(&mine, Some("http://evil.example")),
        403,
        "another site's page"
    );
    let reply = served.get("/", &[("Host", &evil)]);
    assert!(reply.text().starts_with("403: "), "{}", reply.text());
    assert!(reply.text().contains("--allow-host"), "{}", reply.text());
}

/// Pictures FFmpeg decodes from a file the page was given.
fn decoded_pictures(bytes: &[u8]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stretch");
    std::fs::write(&file, bytes).unwrap();
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn issue24_an_mpeg_ts_of_one_key_frame_starting_late_plays_at_every_hit() {
    let archive = indexed(&["offset.ts"]);
    let served = Served::start(serve(&archive, &[]));
    let answer = search(&served, "a+scene");
    let hits = answer["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{answer}");
    for hit in hits {
        let url = hit["url"].as_str().unwrap_or_else(|| panic!("{hit}"));
        let (start, end) = (hit["start"].as_f64().unwrap(), hit["end"].as_f64().unwrap());
        let media = if url.starts_with("/api/stretch/") {
            let asked = format!("{url}?from={start}&to={end}");
            let mut reply = served.get(&asked, &[]);
            while reply.status == 503 {
                std::thread::sleep(std::time::Duration::from_millis(200));
                reply = served.get(&asked, &[]);
            }
            assert_eq!(reply.status, 200, "{start}-{end}: {}", reply.text());
            let made: Value = serde_json::from_slice(&reply.body).unwrap();
            made["url"].as_str().unwrap().to_string()
        } else {
            url.to_string()
        };
        let reply = served.get(&media, &[]);
        assert_eq!(reply.status, 200, "{media}");
        assert!(decoded_pictures(&reply.body) > 0, "{start}-{end} plays");
    }
    // And cut makes a clip of each, through the page's process, which holds the index.
    let out = archive.dir.path().join("clips");
    let output = archive
        .command(&["cut", "a scene", "--min-score", "0", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let clips: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(clips.len(), hits.len(), "{}", stderr(&output));
}

#[test]
fn issue24_serve_watch_indexes_a_file_copied_in_and_the_page_finds_it_without_a_restart() {
    let archive = indexed(&["colors.mp4"]);
    let mut command = serve(&archive, &[]);
    command
        .arg("--watch")
        .arg(&archive.videos)
        .env("SCENEDEX_SETTLE", "1s");
    let mut served = Served::start(command);
    std::fs::copy(fixture("cuts.mp4"), archive.videos.join("cuts.mp4")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let found = loop {
        let answer = search(&served, "colourful+abstract+shapes");
        let hits = answer["hits"].as_array().unwrap();
        if hits.first().is_some_and(|h| file_name(h) == "cuts.mp4") {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert_eq!(served.stop(), Some(130));
    assert!(found, "{}", served.stderr);
    // The indexer stopped before the page: nothing holds the index, nor took it over.
    assert!(
        !archive.index.join("holder.sock").exists(),
        "{}",
        served.stderr
    );
    let lock = std::process::Command::new("flock")
        .args(["-n"])
        .arg(archive.index.join("lock"))
        .arg("true")
        .status()
        .unwrap();
    assert!(lock.success(), "the index's lock is free");
    let hits = archive.search("colourful abstract shapes", &[]);
    assert_eq!(file_name(&hits[0]), "cuts.mp4");
}

#[test]
fn issue24_the_holder_lets_go_of_each_connection_once_its_command_ends() {
    let archive = indexed(&["colors.mp4"]);
    let served = Served::start(serve(&archive, &[]));
    let descriptors = || {
        std::fs::read_dir(format!("/proc/{}/fd", served.child.id()))
            .unwrap()
            .count()
    };
    let before = descriptors();
    for _ in 0..25 {
        let output = archive.command(&["stats"]).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after = descriptors();
    assert!(
        after <= before + 2,
        "{before} descriptors before, {after} after 25 commands"
    );
}
