//! Opening the embedder and the store a command asked for.

use std::path::PathBuf;
use std::sync::Arc;

use super::{EmbedderChoice, Error, StoreArgs};
use crate::caption::{HttpSettings, Secret};
use crate::embed::{Embedder, MiniLm, OpenAiEmbedder};
use crate::store::{EdgeStore, ServerStore, VectorStore};

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

/// Where thumbnails go: beside the embedded index, or in the data folder for a server.
pub fn thumbs_dir(args: &StoreArgs) -> Result<PathBuf, Error> {
    let dir = index_dir(args)?;
    Ok(match &args.qdrant_url {
        None => dir.join("thumbs"),
        Some(_) => dir.join("thumbs").join(&args.collection),
    })
}

/// The index, for this embedder; created on first use when `create` is set.
pub fn store(
    args: &StoreArgs,
    embedder: &dyn Embedder,
    create: bool,
) -> Result<Box<dyn VectorStore>, Error> {
    open(args, Some((embedder.model(), embedder.dimension())), create)
}

/// The index, whatever model built it: for commands that neither add nor search.
pub fn existing_store(args: &StoreArgs) -> Result<Box<dyn VectorStore>, Error> {
    open(args, None, false)
}

/// Fails early, before any model is loaded, when the embedded index does not exist.
pub fn check_exists(args: &StoreArgs) -> Result<(), Error> {
    let dir = index_dir(args)?;
    if args.qdrant_url.is_none() && !EdgeStore::exists(&dir) {
        return Err(crate::store::StoreError::Missing(dir.display().to_string()).into());
    }
    Ok(())
}

fn open(
    args: &StoreArgs,
    model: Option<(&str, usize)>,
    create: bool,
) -> Result<Box<dyn VectorStore>, Error> {
    match &args.qdrant_url {
        Some(url) => {
            let key = std::env::var("QDRANT_API_KEY")
                .ok()
                .filter(|k| !k.trim().is_empty())
                .map(Secret::new);
            let store = ServerStore::open(url, key.as_ref(), &args.collection, model, create)?;
            Ok(Box::new(store))
        }
        None => Ok(Box::new(EdgeStore::open(&index_dir(args)?, model, create)?)),
    }
}
