//! Opening the embedder and the store a command asked for.

use std::path::PathBuf;
use std::sync::Arc;

use super::{EmbedderChoice, Error, StoreArgs};
use crate::caption::{HttpSettings, Secret};
use crate::embed::{Embedder, MiniLm, OpenAiEmbedder};
use crate::store::EdgeStore;

const OPENAI_DEFAULT_URL: &str = "https://api.openai.com/v1";

pub fn embedder(args: &StoreArgs) -> Result<Arc<dyn Embedder>, Error> {
    match args.embedder {
        EmbedderChoice::Local => {
            let dir = MiniLm::default_dir().ok_or_else(|| {
                Error::Config(
                    "no data directory for the embedding model: set SCENEDEX_MINILM_DIR".into(),
                )
            })?;
            let model = MiniLm::load(&dir).map_err(|e| Error::Config(e.to_string()))?;
            Ok(Arc::new(model))
        }
        EmbedderChoice::Openai => {
            let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
            let base = args
                .embedding_url
                .clone()
                .or_else(|| var("OPENAI_BASE_URL"))
                .unwrap_or(OPENAI_DEFAULT_URL.into());
            let key = var("OPENAI_API_KEY");
            if key.is_none() && base == OPENAI_DEFAULT_URL {
                return Err(Error::Config(
                    "OPENAI_API_KEY is not set: the openai embedder needs a key, or SCENEDEX_EMBEDDING_URL pointing at a local server".into(),
                ));
            }
            let model = args
                .embedding_model
                .clone()
                .unwrap_or("text-embedding-3-small".into());
            let embedder =
                OpenAiEmbedder::new(&base, &model, key.map(Secret::new), HttpSettings::default())
                    .map_err(|e| Error::Service(e.to_string()))?;
            Ok(Arc::new(embedder))
        }
    }
}

pub fn index_dir(args: &StoreArgs) -> Result<PathBuf, Error> {
    args.index
        .clone()
        .or_else(|| dirs::data_dir().map(|d| d.join("scenedex").join("index")))
        .ok_or_else(|| Error::Config("no data directory for the index: give --index DIR".into()))
}

/// The index, for this embedder; created on first use when `create` is set.
pub fn store(args: &StoreArgs, embedder: &dyn Embedder, create: bool) -> Result<EdgeStore, Error> {
    let dir = index_dir(args)?;
    Ok(EdgeStore::open(
        &dir,
        Some((embedder.model(), embedder.dimension())),
        create,
    )?)
}

/// The index, whatever model built it: for commands that neither add nor search.
pub fn existing_store(args: &StoreArgs) -> Result<EdgeStore, Error> {
    Ok(EdgeStore::open(&index_dir(args)?, None, false)?)
}
