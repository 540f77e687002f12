//! What a safetensors file holds, from its header alone: each tensor's type, shape and place,
//! checked against the file's length, so a truncated download is told before anything runs
//! (a few lines of JSON; the `safetensors` crate wants the whole file in memory to say it).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

#[derive(serde::Deserialize)]
pub struct Stored {
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Where its bytes are, from the start of the file (after the header).
    #[serde(rename = "data_offsets")]
    pub bytes: (u64, u64),
}

pub struct Weights {
    pub file: File,
    pub tensors: HashMap<String, Stored>,
}

/// Opens `path` and reads its header; every tensor must lie inside the file, and the file must
/// end where the last one does.
pub fn open(path: &Path) -> Result<Weights, String> {
    let short = || "its weights are cut short".to_string();
    let file = File::open(path).map_err(|e| e.to_string())?;
    let length = file.metadata().map_err(|e| e.to_string())?.len();
    let mut size = [0u8; 8];
    file.read_exact_at(&mut size, 0).map_err(|_| short())?;
    let size = u64::from_le_bytes(size);
    if size > length.saturating_sub(8) {
        return Err(short());
    }
    let mut header = vec![0u8; size as usize];
    file.read_exact_at(&mut header, 8)
        .map_err(|e| e.to_string())?;
    let mut header: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("its weights: {e}"))?;
    header.remove("__metadata__");
    let data = 8 + size;
    let mut tensors = HashMap::new();
    let mut end = 0;
    for (name, info) in header {
        let mut stored: Stored =
            serde_json::from_value(info).map_err(|e| format!("its weights: {name}: {e}"))?;
        let (from, to) = stored.bytes;
        if from > to || data + to > length {
            return Err(short());
        }
        end = end.max(data + to);
        stored.bytes = (data + from, data + to);
        tensors.insert(name, stored);
    }
    match end == length || tensors.is_empty() {
        true => Ok(Weights { file, tensors }),
        false => Err(short()),
    }
}

impl Stored {
    /// Bytes an element of its type takes, for the types scenedex's models hold.
    pub fn element_size(&self) -> Option<u64> {
        match self.dtype.as_str() {
            "F16" | "BF16" => Some(2),
            "F32" => Some(4),
            _ => None,
        }
    }

    /// Whether its bytes are exactly its shape's worth.
    pub fn whole(&self) -> bool {
        let elements: u64 = self.shape.iter().map(|&d| d as u64).product();
        self.element_size()
            .is_some_and(|size| elements * size == self.bytes.1 - self.bytes.0)
    }
}
