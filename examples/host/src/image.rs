//! The picture as HF's CLIP image processor (its PIL backend, transformers' classic one) makes
//! it: resize the shortest side with PIL's resampling (separable, fixed point, as
//! libImaging/Resample.c), center crop, rescale, normalise, channels first. Every parameter comes
//! from the folder (`preprocessor_config.json`, or the `image_processor` entry of
//! `processor_config.json`), none from constants.

use crate::error::{Error, Result};
use std::ops::Range;
use std::path::Path;

use serde_json::Value;

/// An RGB8 picture, rows top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Target of the shortest side (aspect kept), or an exact (height, width).
    resize: Option<Resize>,
    crop: Option<(usize, usize)>,
    rescale: Option<f64>,
    normalize: Option<([f64; 3], [f64; 3])>,
    filter: Filter,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Resize {
    ShortestEdge(usize),
    Exact(usize, usize),
}

/// PIL's filters (`resample`: 2 bilinear, 3 bicubic).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Filter {
    Bilinear,
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// The largest resize or crop side a processor config may declare (CLIP's are 224 and 336;
/// every side this host has seen is under 1024).
const MAX_PROCESSED_SIDE: usize = 4096;

fn flag(v: &Value, key: &str, default: bool) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn three(v: &Value, key: &str) -> Result<[f64; 3]> {
    let a = v
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Picture(format!("{key} must be 3 numbers")))?;
    match a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>().as_deref() {
        Some(&[r, g, b]) => Ok([r, g, b]),
        _ => Err(Error::Picture(format!("{key} must be 3 numbers"))),
    }
}

impl Preprocess {
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let pre = dir.join("preprocessor_config.json");
        let proc_ = dir.join("processor_config.json");
        let (path, v) = if pre.is_file() {
            let t = std::fs::read_to_string(&pre).map_err(|e| Error::Picture(format!("{}: {e}", pre.display())))?;
            (
                pre.clone(),
                serde_json::from_str::<Value>(&t).map_err(|e| Error::Picture(format!("{}: {e}", pre.display())))?,
            )
        } else if proc_.is_file() {
            let t = std::fs::read_to_string(&proc_).map_err(|e| Error::Picture(format!("{}: {e}", proc_.display())))?;
            let v: Value = serde_json::from_str(&t).map_err(|e| Error::Picture(format!("{}: {e}", proc_.display())))?;
            let inner = v
                .get("image_processor")
                .cloned()
                .ok_or_else(|| Error::Picture(format!("{}: no image_processor entry", proc_.display())))?;
            (proc_.clone(), inner)
        } else {
            return Err(Error::Picture(format!(
                "{}: no preprocessor_config.json or processor_config.json",
                dir.display()
            )));
        };
        Self::parse(&v).map_err(|e| Error::Picture(format!("{}: {e}", path.display())))
    }

    fn parse(v: &Value) -> Result<Self> {
        let dim = |x: &Value, k: &str| x.get(k).and_then(Value::as_u64).filter(|&n| n > 0).map(|n| n as usize);
        let resize = if flag(v, "do_resize", true) {
            let size = v.get("size").ok_or_else(|| Error::Picture("size is missing".into()))?;
            Some(match (dim(size, "shortest_edge"), dim(size, "height"), dim(size, "width")) {
                (Some(s), _, _) => Resize::ShortestEdge(s),
                (None, Some(h), Some(w)) => Resize::Exact(h, w),
                _ => return Err(Error::Picture("size needs shortest_edge, or height and width".into())),
            })
        } else {
            None
        };
        let crop = if flag(v, "do_center_crop", true) {
            let c = v.get("crop_size").ok_or_else(|| Error::Picture("crop_size is missing".into()))?;
            Some(match (dim(c, "height"), dim(c, "width")) {
                (Some(h), Some(w)) => (h, w),
                _ => return Err(Error::Picture("crop_size needs height and width".into())),
            })
        } else {
            None
        };
        let rescale = if flag(v, "do_rescale", true) {
            Some(
                v.get("rescale_factor")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| Error::Picture("rescale_factor is missing".into()))?,
            )
        } else {
            None
        };
        let normalize = if flag(v, "do_normalize", true) {
            Some((three(v, "image_mean")?, three(v, "image_std")?))
        } else {
            None
        };
        // Sizes come from the file: bounded before anything is sized from them.
        for (what, n) in [
            (
                "size",
                resize.map(|r| match r {
                    Resize::ShortestEdge(s) => s,
                    Resize::Exact(h, w) => h.max(w),
                }),
            ),
            ("crop_size", crop.map(|(h, w)| h.max(w))),
        ] {
            if let Some(n) = n.filter(|&n| n > MAX_PROCESSED_SIDE) {
                return Err(Error::Picture(format!(
                    "{what} {n} is over this host's {MAX_PROCESSED_SIDE} pixels a side"
                )));
            }
        }
        let short = match resize {
            Some(Resize::ShortestEdge(s)) => Some((s, s)),
            Some(Resize::Exact(h, w)) => Some((h, w)),
            None => None,
        };
        if let (Some((sh, sw)), Some((ch, cw))) = (short, crop)
            && (sh < ch || sw < cw)
        {
            return Err(Error::Picture(format!(
                "size {sw}x{sh} is smaller than crop_size {cw}x{ch}: every picture would need padding (not implemented)"
            )));
        }
        if rescale.is_some_and(|f| !f.is_finite())
            || normalize.is_some_and(|(m, s)| m.iter().chain(&s).any(|x| !x.is_finite()) || s.contains(&0.0))
        {
            return Err(Error::Picture(
                "rescale_factor, image_mean and image_std must be finite, image_std nonzero".into(),
            ));
        }
        let filter = match v.get("resample").and_then(Value::as_u64) {
            Some(2) => Filter::Bilinear,
            Some(3) | None => Filter::Bicubic,
            Some(r) => {
                return Err(Error::Picture(format!(
                    "resample {r}: only 2 (bilinear) and 3 (bicubic) are implemented"
                )));
            }
        };
        Ok(Self {
            resize,
            crop,
            rescale,
            normalize,
            filter,
        })
    }

    /// The (height, width) of the pixel values this config makes: the crop, or the exact
    /// resize, or (shortest_edge alone) a square of that side for a square picture.
    fn output(&self) -> Option<(usize, usize)> {
        match (self.crop, self.resize) {
            (Some(c), _) => Some(c),
            (None, Some(Resize::Exact(h, w))) => Some((h, w)),
            (None, Some(Resize::ShortestEdge(s))) => Some((s, s)),
            (None, None) => None,
        }
    }

    /// Checks that this processor makes what a vision tower of `image_size` takes (its position
    /// embeddings fit one square size), before any picture is read.
    pub fn check_for(&self, image_size: usize) -> Result<()> {
        match self.output() {
            Some((h, w)) if (h, w) == (image_size, image_size) => Ok(()),
            Some((h, w)) => Err(Error::Picture(format!(
                "the image processor makes {w}x{h} pixel values, the vision tower takes {image_size}x{image_size} (config.json's image_size)"
            ))),
            None => Err(Error::Picture(format!(
                "the image processor neither resizes nor crops: the vision tower takes {image_size}x{image_size}"
            ))),
        }
    }

    /// The fill colour of [`expand_to_square`] as the original LLaVA repository picks it:
    /// `tuple(int(x * 255) for x in image_processor.image_mean)` (CLIP's: (122, 116, 104)).
    pub fn square_fill(&self) -> Result<[u8; 3]> {
        let (mean, _) = self.normalize.ok_or_else(|| {
            Error::Config("padding to a square fills with the processor's image_mean, and preprocessor_config.json has none".into())
        })?;
        let mut fill = [0u8; 3];
        for (f, m) in fill.iter_mut().zip(mean) {
            if !(0.0..=1.0).contains(&m) {
                return Err(Error::Config(format!(
                    "image_mean {mean:?}: padding to a square needs means in 0..=1 (a colour's fraction of 255)"
                )));
            }
            // Python's int(): towards zero.
            *f = (m * 255.0).trunc() as u8;
        }
        Ok(fill)
    }

    /// pixel_values [3, H, W] as f32.
    pub fn pixel_values(&self, img: &Rgb) -> Result<(usize, usize, Vec<f32>)> {
        let (rh, rw) = match self.resize {
            Some(Resize::ShortestEdge(s)) => {
                // HF's get_resize_output_image_size: the long side is truncated, not rounded.
                let (short, long) = (img.width.min(img.height), img.width.max(img.height));
                let new_long = (s as f64 * long as f64 / short as f64) as usize;
                if img.width <= img.height { (new_long, s) } else { (s, new_long) }
            }
            Some(Resize::Exact(h, w)) => (h, w),
            None => (img.height, img.width),
        };
        let (ch, cw) = self.crop.unwrap_or((rh, rw));
        if ch > rh || cw > rw {
            return Err(Error::Picture(format!(
                "a {cw}x{ch} crop of a {}x{} picture resized to {rw}x{rh} (padding is not implemented)",
                img.width, img.height
            )));
        }
        // Only the crop's window of the resized picture is computed: each output pixel of
        // PIL's separable resize depends on its own coefficients alone, so the window holds
        // what the whole resize would, and memory is the picture's plus the crop's whatever the
        // aspect ratio (a 1 x 100000 picture resized whole would be 336 x 33.6M pixels).
        let window = Window {
            size: (rw, rh),
            left: (rw - cw) / 2,
            top: (rh - ch) / 2,
            width: cw,
            height: ch,
        };
        let img = resize(img, &window, self.filter);
        let (h, w) = (img.height, img.width);
        let mut out = vec![0f32; 3 * h * w];
        for c in 0..3 {
            for p in 0..h * w {
                let x = img.data[p * 3 + c];
                // As numpy does it: rescale in f64 then to f32, normalise in f32.
                let mut v = match self.rescale {
                    Some(f) => (x as f64 * f) as f32,
                    None => x as f32,
                };
                if let Some((mean, std)) = self.normalize {
                    v = (v - mean[c] as f32) / std[c] as f32;
                }
                out[c * h * w + p] = v;
            }
        }
        Ok((h, w, out))
    }

    /// The picture the model saw, as RGBA8: pixel values [3, h, w] back through the normalise
    /// and the rescale (what a heatmap draws its patch grid over).
    pub fn rgba_of(&self, (h, w): (usize, usize), values: &[f32]) -> Result<Vec<u8>> {
        let (mean, std) = self.normalize.unwrap_or(([0.0; 3], [1.0; 3]));
        rgba_of_values((h, w), values, (mean, std), self.rescale.unwrap_or(1.0))
    }
}

/// Writes RGBA8 pixels as a PNG at `path` itself (callers stage through a temporary name:
/// visattn::output::StagedFile).
pub fn write_png(path: &Path, (width, height): (u32, u32), rgba: &[u8]) -> Result<()> {
    use image::ImageEncoder;
    let file = std::fs::File::create(path).map_err(|e| Error::file(path, e))?;
    image::codecs::png::PngEncoder::new(std::io::BufWriter::new(file))
        .write_image(rgba, width, height, image::ExtendedColorType::Rgba8)
        .map_err(|e| Error::Picture(format!("{}: {e}", path.display())))
}

/// Pixel values [3, h, w] made as `(x * rescale - mean) / std` back to RGBA8.
pub fn rgba_of_values((h, w): (usize, usize), values: &[f32], (mean, std): ([f64; 3], [f64; 3]), rescale: f64) -> Result<Vec<u8>> {
    if values.len() != 3 * h * w {
        return Err(Error::Picture(format!("{} pixel values for 3 x {h} x {w}", values.len())));
    }
    let mut out = vec![255u8; 4 * h * w];
    for c in 0..3 {
        for p in 0..h * w {
            let v = (values[c * h * w + p] as f64 * std[c] + mean[c]) / rescale;
            out[p * 4 + c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(out)
}

/// The largest picture side and pixel count decoded (8K video is 7680 x 4320 = 33 Mpx; a 50 Mpx
/// camera's 8160 x 6120 fits): what the decoder may allocate is bounded by these, never by a
/// file's declared size.
const MAX_SIDE: u32 = 16384;
const MAX_PIXELS: u64 = 1 << 26;

/// What PIL's PNG plugin acts on that the decoder's output hides: the colour type and the
/// tRNS chunk (a transparent colour, or palette alphas).
struct PngHeader {
    color_type: u8,
    trns: Option<Vec<u8>>,
}

/// The PNG chunks before the image data, their bodies skipped (None for another format).
fn png_header(path: &Path) -> Result<Option<PngHeader>> {
    use std::io::{Read, Seek, SeekFrom};
    let err = |e: std::io::Error| Error::file(path, e);
    let mut f = std::io::BufReader::new(std::fs::File::open(path).map_err(err)?);
    let mut sig = [0u8; 8];
    if f.read_exact(&mut sig).is_err() || sig != *b"\x89PNG\r\n\x1a\n" {
        return Ok(None);
    }
    let mut header = PngHeader { color_type: 0, trns: None };
    loop {
        let mut head = [0u8; 8];
        if f.read_exact(&mut head).is_err() {
            // Truncated: the decoder says what is wrong.
            return Ok(Some(header));
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        match &head[4..] {
            b"IHDR" | b"tRNS" if len <= 256 * 4 => {
                let mut body = vec![0u8; len as usize];
                f.read_exact(&mut body).map_err(err)?;
                if &head[4..] == b"IHDR" && body.len() >= 10 {
                    header.color_type = body[9];
                } else {
                    header.trns = Some(body);
                }
                f.seek(SeekFrom::Current(4)).map_err(err)?;
            }
            b"IDAT" | b"IEND" => return Ok(Some(header)),
            _ => {
                f.seek(SeekFrom::Current(len as i64 + 4)).map_err(err)?;
            }
        }
    }
}

/// PIL's `Image.alpha_composite` of one channel over opaque white (libImaging/AlphaComposite.c,
/// fixed point with 7 extra bits; checked against Pillow 13 for every value and alpha).
fn over_white(c: u8, a: u8) -> u8 {
    if a == 0 {
        return 255;
    }
    let (c, a) = (c as u32, a as u32);
    let tmp = c * a * 128 + 255 * (255 - a) * 128 + (0x80 << 7);
    ((((tmp >> 8) + tmp) >> 8) >> 7) as u8
}

/// Decodes a PNG or JPEG to the RGB8 that HF's processor works on: transformers'
/// `convert_to_rgb` of what PIL opens. Pictures with alpha (or a PNG transparent colour) are
/// composited onto white, not stripped of it; PIL keeps the high byte of 16-bit PNG samples,
/// except 16-bit grey, which it opens as mode I;16 and converts to RGB by clipping at 255 (a
/// 16-bit grey of 30000 is white); a transparent colour is compared as PIL compares it (after
/// expanding low-bit grey to 8 bits; I;16's key modulo 256). Width, height and pixel count are
/// checked from the header before anything is decoded.
pub fn load(path: &Path) -> Result<Rgb> {
    load_as(path, Alpha::OverWhite)
}

/// A picture as the original LLaVA repository reads it, `Image.open(path).convert("RGB")`:
/// PIL's conversion drops alpha and transparent colours (HF's `convert_to_rgb`, [`load`],
/// composites them onto white); the rest as [`load`] (16-bit samples, grey's clipping).
pub fn load_dropping_alpha(path: &Path) -> Result<Rgb> {
    load_as(path, Alpha::Dropped)
}

/// What a picture's alpha becomes in RGB.
#[derive(Clone, Copy, PartialEq)]
enum Alpha {
    OverWhite,
    Dropped,
}

fn load_as(path: &Path, alpha: Alpha) -> Result<Rgb> {
    let (img, png) = decode(path)?;
    let (w, h) = (img.width(), img.height());
    let (color_type, trns) = match &png {
        Some(p) => (Some(p.color_type), p.trns.as_deref()),
        None => (None, None),
    };
    // A grey PNG's transparent colour, as PIL matches it against its 8-bit values.
    let grey_key = match (color_type, trns) {
        (Some(0), Some([hi, lo, ..])) => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    };
    let keyed = |v: u8, key: u16| if v as u16 == key { 0 } else { 255 };
    let rgba: Vec<[u8; 4]> = match img {
        image::DynamicImage::ImageLuma8(b) => b.pixels().map(|p| [p[0], p[0], p[0], 255]).collect(),
        image::DynamicImage::ImageLumaA8(b) => b
            .pixels()
            .map(|p| [p[0], p[0], p[0], grey_key.map_or(p[1], |k| keyed(p[0], k))])
            .collect(),
        image::DynamicImage::ImageRgb8(b) => b.pixels().map(|p| [p[0], p[1], p[2], 255]).collect(),
        image::DynamicImage::ImageRgba8(b) => b.pixels().map(|p| p.0).collect(),
        image::DynamicImage::ImageLuma16(b) => b
            .pixels()
            .map(|p| {
                let v = p[0].min(255) as u8;
                [v, v, v, 255]
            })
            .collect(),
        image::DynamicImage::ImageLumaA16(b) => b
            .pixels()
            .map(|p| match grey_key {
                Some(k) => {
                    let v = p[0].min(255) as u8;
                    [v, v, v, keyed(v, k & 0xff)]
                }
                None => {
                    let v = (p[0] >> 8) as u8;
                    [v, v, v, (p[1] >> 8) as u8]
                }
            })
            .collect(),
        image::DynamicImage::ImageRgb16(b) => b
            .pixels()
            .map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8, 255])
            .collect(),
        image::DynamicImage::ImageRgba16(_) if color_type == Some(2) => {
            return Err(Error::Picture(format!(
                "{}: a 16-bit RGB PNG with a transparent colour (tRNS) is not implemented: PIL's reading of it is not reproduced",
                path.display()
            )));
        }
        image::DynamicImage::ImageRgba16(b) => b
            .pixels()
            .map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8, (p[3] >> 8) as u8])
            .collect(),
        other => {
            return Err(Error::Picture(format!(
                "{}: pixels of type {:?} are not implemented",
                path.display(),
                other.color()
            )));
        }
    };
    Ok(Rgb {
        width: w as usize,
        height: h as usize,
        data: rgba
            .iter()
            .flat_map(|&[r, g, b, a]| match alpha {
                Alpha::OverWhite => [over_white(r, a), over_white(g, a), over_white(b, a)],
                Alpha::Dropped => [r, g, b],
            })
            .collect(),
    })
}

/// The original LLaVA repository's `expand2square`: the picture pasted on a square of its
/// longer side filled with `fill`, at ((longer - width) // 2, (longer - height) // 2); a square
/// picture as it is.
pub fn expand_to_square(img: &Rgb, fill: [u8; 3]) -> Rgb {
    let side = img.width.max(img.height);
    if img.width == img.height {
        return img.clone();
    }
    let (x0, y0) = ((side - img.width) / 2, (side - img.height) / 2);
    let mut data = fill.repeat(side * side);
    for y in 0..img.height {
        let from = &img.data[y * img.width * 3..(y + 1) * img.width * 3];
        let at = ((y0 + y) * side + x0) * 3;
        data[at..at + from.len()].copy_from_slice(from);
    }
    Rgb {
        width: side,
        height: side,
        data,
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's coefficients for one axis, for outputs `outputs` of `out_size`: per output pixel, the
/// first input pixel and its fixed-point weights.
fn coefficients(in_size: usize, out_size: usize, filter: Filter, outputs: Range<usize>) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    outputs
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax).map(|x| filter.weight((x as f64 - center + 0.5) * ss)).collect();
            let total: f64 = w.iter().sum();
            let k = w
                .iter()
                .map(|&v| {
                    let v = if total != 0.0 { v / total } else { v };
                    let fixed = v * (1u32 << PRECISION_BITS) as f64;
                    (if v < 0.0 { fixed - 0.5 } else { fixed + 0.5 }) as i32
                })
                .collect();
            (xmin, k)
        })
        .collect()
}

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// A window of a resized picture: the resized (width, height) and the window's place in it.
struct Window {
    size: (usize, usize),
    left: usize,
    top: usize,
    width: usize,
    height: usize,
}

/// Per output pixel of one axis, the first input pixel and its fixed-point weights.
type Coefficients = Vec<(usize, Vec<i32>)>;

/// The input pixels an axis's window reads: its coefficients' span, or the window itself where
/// the axis keeps its size.
fn span(k: Option<&Coefficients>, window: Range<usize>) -> Range<usize> {
    match k {
        Some(k) => {
            let first = k.iter().map(|(x, _)| *x).min().unwrap_or(0);
            let end = k.iter().map(|(x, kk)| x + kk.len()).max().unwrap_or(first);
            first..end
        }
        None => window,
    }
}

/// PIL's horizontal pass over the rows `rows` of `src`, whose column c is the axis's input pixel
/// x0 + c: the output columns `cols` (resampled with `k`, or copied where the width is kept).
fn horizontal(src: &Rgb, rows: Range<usize>, (x0, k): (usize, Option<&Coefficients>), cols: Range<usize>) -> Rgb {
    let w = cols.len();
    let mut out = vec![0u8; rows.len() * w * 3];
    for (r, y) in rows.clone().enumerate() {
        let row = &src.data[y * src.width * 3..(y + 1) * src.width * 3];
        let dst = &mut out[r * w * 3..(r + 1) * w * 3];
        match k {
            Some(k) => {
                for (xx, (xmin, kk)) in k.iter().enumerate() {
                    for c in 0..3 {
                        let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                        for (i, &kv) in kk.iter().enumerate() {
                            acc += row[(xmin + i - x0) * 3 + c] as i32 * kv;
                        }
                        dst[xx * 3 + c] = clip8(acc);
                    }
                }
            }
            None => dst.copy_from_slice(&row[(cols.start - x0) * 3..(cols.end - x0) * 3]),
        }
    }
    Rgb {
        width: w,
        height: rows.len(),
        data: out,
    }
}

/// PIL's vertical pass over the columns `cols` of `src`, whose row r is the axis's input pixel
/// y0 + r: the output rows `rows` (resampled with `k`, or copied where the height is kept).
fn vertical(src: &Rgb, cols: Range<usize>, (y0, k): (usize, Option<&Coefficients>), rows: Range<usize>) -> Rgb {
    let w = cols.len();
    let mut out = vec![0u8; rows.len() * w * 3];
    for (yy, y) in rows.clone().enumerate() {
        let dst = &mut out[yy * w * 3..(yy + 1) * w * 3];
        match k {
            Some(k) => {
                let (ymin, kk) = &k[yy];
                for (i, x) in cols.clone().enumerate() {
                    for c in 0..3 {
                        let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                        for (j, &kv) in kk.iter().enumerate() {
                            acc += src.data[((ymin + j - y0) * src.width + x) * 3 + c] as i32 * kv;
                        }
                        dst[i * 3 + c] = clip8(acc);
                    }
                }
            }
            None => {
                let at = ((y - y0) * src.width + cols.start) * 3;
                dst.copy_from_slice(&src.data[at..at + w * 3]);
            }
        }
    }
    Rgb {
        width: w,
        height: rows.len(),
        data: out,
    }
}

/// The window of PIL's `Image.resize` of an RGB8 picture (Pillow 13, libImaging/Resample.c):
/// two passes, each rounded to 8 bits, so their order shows in the values. The horizontal one
/// runs first unless the height shrinks by more than twice what the width does; an axis of
/// unchanged size is not resampled. Computed for the window's pixels and the input pixels they
/// read only.
fn resize(img: &Rgb, win: &Window, filter: Filter) -> Rgb {
    let (width, height) = win.size;
    let (cols, rows) = (win.left..win.left + win.width, win.top..win.top + win.height);
    let kx = (width != img.width).then(|| coefficients(img.width, width, filter, cols.clone()));
    let ky = (height != img.height).then(|| coefficients(img.height, height, filter, rows.clone()));
    let (xs, ys) = (span(kx.as_ref(), cols.clone()), span(ky.as_ref(), rows.clone()));
    let shrink = (img.height as i64 - height as i64, img.width as i64 - width as i64);
    if shrink.0 > 0 && shrink.0 > shrink.1 * 2 {
        let mid = vertical(img, xs.clone(), (0, ky.as_ref()), rows);
        horizontal(&mid, 0..mid.height, (xs.start, kx.as_ref()), cols)
    } else {
        let mid = horizontal(img, ys.clone(), (0, kx.as_ref()), cols);
        vertical(&mid, 0..mid.width, (ys.start, ky.as_ref()), rows)
    }
}

/// A picture file decoded within this host's limits (width, height and pixel count checked from
/// the header before anything is decoded), and a PNG's header chunks.
fn decode(path: &Path) -> Result<(image::DynamicImage, Option<PngHeader>)> {
    let err = |e: &dyn std::fmt::Display| Error::Picture(format!("{}: cannot decode the picture: {e}", path.display()));
    let png = png_header(path)?;
    let mut reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| Error::Picture(format!("{}: {e}", path.display())))?;
    let mut limits = image::Limits::default();
    // Decoded samples (16-bit RGBA at the largest pixel count) and the decoder's buffers.
    limits.max_alloc = Some(MAX_PIXELS * 8 + (64 << 20));
    reader.limits(limits.clone());
    // The header alone, then the size checked (with the size in the message) before decoding.
    let mut decoder = reader.into_decoder().map_err(|e| err(&e))?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    if w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > MAX_PIXELS {
        return Err(Error::Picture(format!(
            "{}: a {w}x{h} picture is over this host's limits ({MAX_SIDE} pixels a side, {MAX_PIXELS} pixels)",
            path.display()
        )));
    }
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    image::ImageDecoder::set_limits(&mut decoder, limits).map_err(|e| err(&e))?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| err(&e))?;
    Ok((img, png))
}

/// A picture as llama.cpp's mtmd helper loads it (stb_image asked for 3 channels): alpha, and a
/// PNG's transparent colour, dropped rather than composited (PIL and so HF composite onto
/// white, [`load`]); 16-bit samples' high byte (PIL clips 16-bit grey at 255); grey replicated.
/// JPEG pictures are decoded by this host's decoder, whose rounding may differ from stb's by a
/// level here and there.
pub fn load_as_llama_cpp(path: &Path) -> Result<Rgb> {
    let (img, _) = decode(path)?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    let data: Vec<u8> = match img {
        image::DynamicImage::ImageLuma8(b) => b.pixels().flat_map(|p| [p[0]; 3]).collect(),
        image::DynamicImage::ImageLumaA8(b) => b.pixels().flat_map(|p| [p[0]; 3]).collect(),
        image::DynamicImage::ImageRgb8(b) => b.into_raw(),
        image::DynamicImage::ImageRgba8(b) => b.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect(),
        image::DynamicImage::ImageLuma16(b) => b.pixels().flat_map(|p| [(p[0] >> 8) as u8; 3]).collect(),
        image::DynamicImage::ImageLumaA16(b) => b.pixels().flat_map(|p| [(p[0] >> 8) as u8; 3]).collect(),
        image::DynamicImage::ImageRgb16(b) => b.pixels().flat_map(|p| p.0.map(|v| (v >> 8) as u8)).collect(),
        image::DynamicImage::ImageRgba16(b) => b
            .pixels()
            .flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
            .collect(),
        other => {
            return Err(Error::Picture(format!(
                "{}: pixels of type {:?} are not implemented",
                path.display(),
                other.color()
            )));
        }
    };
    Ok(Rgb { width, height, data })
}

/// llama.cpp's picture for a LLaVA-1.5 mmproj file (tools/mtmd/mtmd-image.cpp:
/// `mtmd_image_preprocessor_fixed_size` with clip.cpp's LLaVA parameters): scaled to fit the
/// model's square with its aspect kept (`img_tool::resize`, PAD_CEIL: sides rounded up, in f32),
/// resized by llama.cpp's port of Pillow's bicubic resampling (`resize_pillow`: the same fixed
/// point coefficients as PIL's, but the horizontal pass always first), centred on a square of
/// (122, 116, 104) (CLIP's mean in 8 bits; offsets rounded down), then each value / 255 and
/// normalised with the file's mean and std in f32 (`clip_image_f32::from_u8`, `normalize`);
/// channels first, [3, size, size]. A picture of exactly the model's size is used as it is.
pub fn llama_cpp_pixels(img: &Rgb, size: usize, mean: [f32; 3], std: [f32; 3]) -> Result<Vec<f32>> {
    if size == 0 || size > MAX_PROCESSED_SIDE || img.width == 0 || img.height == 0 {
        return Err(Error::Picture(format!(
            "a {}x{} picture for a {size}x{size} model",
            img.width, img.height
        )));
    }
    let square = if (img.width, img.height) == (size, size) {
        Rgb {
            width: size,
            height: size,
            data: img.data.clone(),
        }
    } else {
        let scale = (size as f32 / img.width as f32).min(size as f32 / img.height as f32);
        let fit = |side: usize| (((side as f32 * scale).ceil() as usize).max(1)).min(size);
        let (w, h) = (fit(img.width), fit(img.height));
        let kx = (w != img.width).then(|| coefficients(img.width, w, Filter::Bicubic, 0..w));
        let ky = (h != img.height).then(|| coefficients(img.height, h, Filter::Bicubic, 0..h));
        let mid = horizontal(img, 0..img.height, (0, kx.as_ref()), 0..w);
        let resized = vertical(&mid, 0..w, (0, ky.as_ref()), 0..h);
        let mut data: Vec<u8> = [122u8, 116, 104].repeat(size * size);
        let (left, top) = ((size - w) / 2, (size - h) / 2);
        for y in 0..h {
            let to = ((top + y) * size + left) * 3;
            data[to..to + w * 3].copy_from_slice(&resized.data[y * w * 3..(y + 1) * w * 3]);
        }
        Rgb {
            width: size,
            height: size,
            data,
        }
    };
    let plane = size * size;
    let mut out = vec![0f32; 3 * plane];
    for p in 0..plane {
        for c in 0..3 {
            out[c * plane + p] = (square.data[p * 3 + c] as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    Ok(out)
}
