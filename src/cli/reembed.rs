//! `scenedex reembed --embedder NAME`: flags to settings, a progress bar, the summary; the work
//! is `reembed::run`'s.

use super::output::{count, Out};
use super::{Error, ReembedArgs};
use crate::backends::{embedder, StoreSettings};

pub fn run(args: &ReembedArgs) -> Result<(), Error> {
    let settings = StoreSettings {
        embedding_model: Some(args.embedder.clone()),
        embedding_url: args.embedding_url.clone(),
        ..args.place.settings()
    };
    super::warn_about_key(&settings);
    settings.check_exists()?;
    let embedder = embedder(&settings)?;
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{wide_bar} {pos}/{len} segments {eta}")
            .expect("template is valid"),
    );
    let summary = crate::reembed::run(&settings, embedder.as_ref(), &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    });
    bar.finish_and_clear();
    let summary = summary?;
    let mut out = Out::new();
    if args.json {
        return out.json(&summary);
    }
    if summary.from.is_empty() {
        return out.line(&format!(
            "{}: the switch to {} is finished",
            summary.index, summary.to
        ));
    }
    let resumed = match summary.resumed {
        0 => String::new(),
        n => format!(", {n} done by an earlier run"),
    };
    out.line(&format!(
        "{}: {} embedded with {} instead of {} in {:.1} s ({} embedded{resumed}); nothing was captioned or heard",
        summary.index,
        count(summary.segments, "segment", "segments"),
        summary.to,
        summary.from,
        summary.seconds,
        count(summary.texts_embedded, "text", "texts"),
    ))?;
    if summary.from_caption_only > 0 {
        eprintln!(
            "note: {} made before scenedex kept their frames' texts took their caption's alone",
            count(summary.from_caption_only, "segment", "segments")
        );
    }
    Ok(())
}
