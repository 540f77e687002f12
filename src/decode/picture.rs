//! Turning decoded frames into pictures: RGB images as a player shows them (sample aspect ratio
//! and rotation applied), and tiny YUV signatures for change detection.

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling::{Context as Scaler, Flags};
use ffmpeg_next as ffmpeg;
use image::RgbImage;

/// Size of the signature frames that scene detection compares.
pub const SMALL_W: u32 = 64;
pub const SMALL_H: u32 = 36;

/// Clockwise rotation a player applies to the decoded picture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum Rotation {
    #[default]
    #[serde(rename = "0")]
    None,
    #[serde(rename = "90")]
    Cw90,
    #[serde(rename = "180")]
    Cw180,
    #[serde(rename = "270")]
    Cw270,
}

impl Rotation {
    pub fn from_stream(stream: &ffmpeg::format::stream::Stream) -> Rotation {
        stream
            .side_data()
            .find(|d| d.kind() == ffmpeg::codec::packet::side_data::Type::DisplayMatrix)
            .and_then(|d| matrix_angle(d.data()))
            .map_or(Rotation::None, Rotation::from_counterclockwise)
    }

    /// FFmpeg gives the matrix's angle counter-clockwise; players turn the picture back.
    fn from_counterclockwise(degrees: f64) -> Rotation {
        let clockwise = (-degrees.round()).rem_euclid(360.0);
        match clockwise as u32 {
            45..=134 => Rotation::Cw90,
            135..=224 => Rotation::Cw180,
            225..=314 => Rotation::Cw270,
            _ => Rotation::None,
        }
    }

    pub fn swaps_sides(self) -> bool {
        matches!(self, Rotation::Cw90 | Rotation::Cw270)
    }

    fn apply(self, image: RgbImage) -> RgbImage {
        match self {
            Rotation::None => image,
            Rotation::Cw90 => image::imageops::rotate90(&image),
            Rotation::Cw180 => image::imageops::rotate180(&image),
            Rotation::Cw270 => image::imageops::rotate270(&image),
        }
    }
}

fn matrix_angle(bytes: &[u8]) -> Option<f64> {
    if bytes.len() < 36 {
        return None;
    }
    let mut matrix = [0i32; 9];
    for (value, chunk) in matrix.iter_mut().zip(bytes.chunks_exact(4)) {
        *value = i32::from_ne_bytes(chunk.try_into().ok()?);
    }
    // SAFETY: the matrix is a properly aligned array of nine i32, as the function expects.
    let angle = unsafe { ffmpeg::ffi::av_display_rotation_get(matrix.as_ptr()) };
    angle.is_finite().then_some(angle)
}

/// The size a player shows: non-square pixels stretched, then rotation applied.
pub fn display_size(
    width: u32,
    height: u32,
    sar: ffmpeg::Rational,
    rotation: Rotation,
) -> (u32, u32) {
    let (w, h) = square_pixel_size(width, height, sar);
    if rotation.swaps_sides() {
        (h, w)
    } else {
        (w, h)
    }
}

fn square_pixel_size(width: u32, height: u32, sar: ffmpeg::Rational) -> (u32, u32) {
    let (num, den) = (sar.numerator(), sar.denominator());
    if num <= 0 || den <= 0 || num == den {
        return (width, height);
    }
    let stretched = (f64::from(width) * f64::from(num) / f64::from(den)).round() as u32;
    (stretched.max(1), height)
}

/// A frame reduced to SMALL_W x SMALL_H in planar YUV 4:4:4: cheap to compare, blind to noise.
#[derive(Clone, Debug)]
pub struct Small {
    pub planes: [Vec<u8>; 3],
}

impl Small {
    /// Mean absolute difference over all samples of all three planes, on a 0-255 scale.
    pub fn distance(&self, other: &Small) -> f64 {
        let mut total = 0u64;
        let mut count = 0u64;
        for (a, b) in self.planes.iter().zip(&other.planes) {
            total += a
                .iter()
                .zip(b)
                .map(|(x, y)| u64::from(x.abs_diff(*y)))
                .sum::<u64>();
            count += a.len() as u64;
        }
        if count == 0 {
            0.0
        } else {
            total as f64 / count as f64
        }
    }
}

/// Reusable scalers: building one is costly, and a stream keeps one format for long runs.
#[derive(Default)]
pub struct Converter {
    small: Option<(Key, Scaler)>,
    rgb: Option<(Key, Scaler)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    format: Pixel,
    width: u32,
    height: u32,
    out_width: u32,
    out_height: u32,
}

impl Converter {
    pub fn small(&mut self, frame: &ffmpeg::frame::Video) -> Result<Small, ffmpeg::Error> {
        let key = key_for(frame, SMALL_W, SMALL_H);
        let scaler = cached(&mut self.small, key, Pixel::YUV444P, Flags::AREA)?;
        let mut out = ffmpeg::frame::Video::empty();
        scaler.run(frame, &mut out)?;
        let plane = |i: usize| copy_plane(&out, i, SMALL_W as usize, SMALL_H as usize, 1);
        Ok(Small {
            planes: [plane(0), plane(1), plane(2)],
        })
    }

    /// The frame as a player shows it, scaled so its longer side is at most `max_side`.
    pub fn rgb(
        &mut self,
        frame: &ffmpeg::frame::Video,
        rotation: Rotation,
        max_side: u32,
    ) -> Result<RgbImage, ffmpeg::Error> {
        let (w, h) = square_pixel_size(frame.width(), frame.height(), frame.aspect_ratio());
        let (out_w, out_h) = fit(w, h, max_side);
        let key = key_for(frame, out_w, out_h);
        let fresh = self.rgb.as_ref().is_none_or(|(k, _)| *k != key);
        let scaler = cached(
            &mut self.rgb,
            key,
            Pixel::RGB24,
            Flags::AREA | Flags::ACCURATE_RND,
        )?;
        if fresh {
            set_colorspace(scaler, frame);
        }
        let mut out = ffmpeg::frame::Video::empty();
        scaler.run(frame, &mut out)?;
        let pixels = copy_plane(&out, 0, out_w as usize, out_h as usize, 3);
        let image = RgbImage::from_raw(out_w, out_h, pixels).expect("buffer sized to the image");
        Ok(rotation.apply(image))
    }
}

fn key_for(frame: &ffmpeg::frame::Video, out_width: u32, out_height: u32) -> Key {
    Key {
        format: frame.format(),
        width: frame.width(),
        height: frame.height(),
        out_width,
        out_height,
    }
}

fn cached(
    slot: &mut Option<(Key, Scaler)>,
    key: Key,
    target: Pixel,
    flags: Flags,
) -> Result<&mut Scaler, ffmpeg::Error> {
    if slot.as_ref().is_none_or(|(k, _)| *k != key) {
        let scaler = Scaler::get(
            key.format,
            key.width,
            key.height,
            target,
            key.out_width,
            key.out_height,
            flags,
        )?;
        *slot = Some((key, scaler));
    }
    Ok(&mut slot.as_mut().expect("just filled").1)
}

/// Largest size with the same aspect whose longer side is at most `max_side` (never upscaled).
fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width.max(1), height.max(1));
    }
    let scale = f64::from(max_side) / f64::from(longest);
    let w = (f64::from(width) * scale).round() as u32;
    let h = (f64::from(height) * scale).round() as u32;
    (w.max(1), h.max(1))
}

fn copy_plane(
    frame: &ffmpeg::frame::Video,
    index: usize,
    width: usize,
    height: usize,
    bytes_per_pixel: usize,
) -> Vec<u8> {
    let stride = frame.stride(index);
    let row = width * bytes_per_pixel;
    let data = frame.data(index);
    let mut out = Vec::with_capacity(row * height);
    for y in 0..height {
        out.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    out
}

/// Without this swscale assumes BT.601 limited range, which shifts the colours of HD video.
fn set_colorspace(scaler: &mut Scaler, frame: &ffmpeg::frame::Video) {
    use ffmpeg::color::{Range, Space};
    use ffmpeg::ffi;
    let space = match frame.color_space() {
        Space::BT709 => ffi::SWS_CS_ITU709,
        Space::FCC => ffi::SWS_CS_FCC,
        Space::BT470BG | Space::SMPTE170M => ffi::SWS_CS_ITU601,
        Space::SMPTE240M => ffi::SWS_CS_SMPTE240M,
        Space::BT2020NCL | Space::BT2020CL => ffi::SWS_CS_BT2020,
        // Unlabelled video: the usual convention is BT.709 for HD sizes and BT.601 below.
        _ if frame.height() >= 720 => ffi::SWS_CS_ITU709,
        _ => ffi::SWS_CS_ITU601,
    };
    let full_range = i32::from(frame.color_range() == Range::JPEG);
    // SAFETY: the scaler pointer is live; sws_getCoefficients returns a static table.
    unsafe {
        let table = ffi::sws_getCoefficients(space);
        ffi::sws_setColorspaceDetails(
            scaler.as_mut_ptr(),
            table,
            full_range,
            table,
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
}
