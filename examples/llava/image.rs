//! The picture as HF's CLIP image processor (its PIL backend, transformers' classic one) makes
//! it: resize the shortest side with PIL's resampling (separable, fixed point, as
//! libImaging/Resample.c), center crop, rescale, normalise, channels first. Every parameter comes
//! from the folder (`preprocessor_config.json`, or the `image_processor` entry of
//! `processor_config.json`), none from constants.

use std::path::Path;

use serde_json::Value;

/// An RGB8 picture, rows top to bottom.
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

fn flag(v: &Value, key: &str, default: bool) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn three(v: &Value, key: &str) -> Result<[f64; 3], String> {
    let a = v
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{key} must be 3 numbers"))?;
    match a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>().as_deref() {
        Some(&[r, g, b]) => Ok([r, g, b]),
        _ => Err(format!("{key} must be 3 numbers")),
    }
}

impl Preprocess {
    pub fn from_dir(dir: &Path) -> Result<Self, String> {
        let pre = dir.join("preprocessor_config.json");
        let proc_ = dir.join("processor_config.json");
        let (path, v) = if pre.is_file() {
            let t = std::fs::read_to_string(&pre).map_err(|e| format!("{}: {e}", pre.display()))?;
            (
                pre.clone(),
                serde_json::from_str::<Value>(&t).map_err(|e| format!("{}: {e}", pre.display()))?,
            )
        } else if proc_.is_file() {
            let t = std::fs::read_to_string(&proc_).map_err(|e| format!("{}: {e}", proc_.display()))?;
            let v: Value = serde_json::from_str(&t).map_err(|e| format!("{}: {e}", proc_.display()))?;
            let inner = v
                .get("image_processor")
                .cloned()
                .ok_or_else(|| format!("{}: no image_processor entry", proc_.display()))?;
            (proc_.clone(), inner)
        } else {
            return Err(format!("{}: no preprocessor_config.json or processor_config.json", dir.display()));
        };
        Self::parse(&v).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn parse(v: &Value) -> Result<Self, String> {
        let dim = |x: &Value, k: &str| x.get(k).and_then(Value::as_u64).filter(|&n| n > 0).map(|n| n as usize);
        let resize = if flag(v, "do_resize", true) {
            let size = v.get("size").ok_or("size is missing")?;
            Some(match (dim(size, "shortest_edge"), dim(size, "height"), dim(size, "width")) {
                (Some(s), _, _) => Resize::ShortestEdge(s),
                (None, Some(h), Some(w)) => Resize::Exact(h, w),
                _ => return Err("size needs shortest_edge, or height and width".into()),
            })
        } else {
            None
        };
        let crop = if flag(v, "do_center_crop", true) {
            let c = v.get("crop_size").ok_or("crop_size is missing")?;
            Some(match (dim(c, "height"), dim(c, "width")) {
                (Some(h), Some(w)) => (h, w),
                _ => return Err("crop_size needs height and width".into()),
            })
        } else {
            None
        };
        let rescale = if flag(v, "do_rescale", true) {
            Some(v.get("rescale_factor").and_then(Value::as_f64).ok_or("rescale_factor is missing")?)
        } else {
            None
        };
        let normalize = if flag(v, "do_normalize", true) {
            Some((three(v, "image_mean")?, three(v, "image_std")?))
        } else {
            None
        };
        let filter = match v.get("resample").and_then(Value::as_u64) {
            Some(2) => Filter::Bilinear,
            Some(3) | None => Filter::Bicubic,
            Some(r) => return Err(format!("resample {r}: only 2 (bilinear) and 3 (bicubic) are implemented")),
        };
        Ok(Self {
            resize,
            crop,
            rescale,
            normalize,
            filter,
        })
    }

    /// pixel_values [3, H, W] as f32.
    pub fn pixel_values(&self, img: &Rgb) -> Result<(usize, usize, Vec<f32>), String> {
        let mut img = match self.resize {
            Some(Resize::ShortestEdge(s)) => {
                // HF's get_resize_output_image_size: the long side is truncated, not rounded.
                let (short, long) = (img.width.min(img.height), img.width.max(img.height));
                let new_long = (s as f64 * long as f64 / short as f64) as usize;
                let (h, w) = if img.width <= img.height { (new_long, s) } else { (s, new_long) };
                resize(img, w, h, self.filter)
            }
            Some(Resize::Exact(h, w)) => resize(img, w, h, self.filter),
            None => Rgb {
                width: img.width,
                height: img.height,
                data: img.data.clone(),
            },
        };
        if let Some((ch, cw)) = self.crop {
            if ch > img.height || cw > img.width {
                return Err(format!(
                    "a {cw}x{ch} crop of a {}x{} picture (padding is not implemented)",
                    img.width, img.height
                ));
            }
            let (top, left) = ((img.height - ch) / 2, (img.width - cw) / 2);
            let mut data = Vec::with_capacity(ch * cw * 3);
            for y in top..top + ch {
                data.extend_from_slice(&img.data[(y * img.width + left) * 3..(y * img.width + left + cw) * 3]);
            }
            img = Rgb {
                width: cw,
                height: ch,
                data,
            };
        }
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
}

/// Decodes a PNG or JPEG to RGB8.
pub fn load(path: &Path) -> Result<Rgb, String> {
    let img = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| format!("{}: {e}", path.display()))?
        .decode()
        .map_err(|e| format!("{}: cannot decode the picture: {e}", path.display()))?
        .to_rgb8();
    Ok(Rgb {
        width: img.width() as usize,
        height: img.height() as usize,
        data: img.into_raw(),
    })
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's coefficients for one axis: per output pixel, the first input pixel and its fixed-point
/// weights.
fn coefficients(in_size: usize, out_size: usize, filter: Filter) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    (0..out_size)
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

/// PIL's `Image.resize` of an RGB8 picture: a horizontal pass, then a vertical one, each rounded
/// to 8 bits.
fn resize(img: &Rgb, width: usize, height: usize, filter: Filter) -> Rgb {
    let mut data = img.data.clone();
    let mut w = img.width;
    if width != img.width {
        let k = coefficients(img.width, width, filter);
        let mut out = vec![0u8; img.height * width * 3];
        for y in 0..img.height {
            for (xx, (xmin, kk)) in k.iter().enumerate() {
                for c in 0..3 {
                    let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                    for (i, &kv) in kk.iter().enumerate() {
                        acc += data[(y * w + xmin + i) * 3 + c] as i32 * kv;
                    }
                    out[(y * width + xx) * 3 + c] = clip8(acc);
                }
            }
        }
        data = out;
        w = width;
    }
    if height != img.height {
        let k = coefficients(img.height, height, filter);
        let mut out = vec![0u8; height * w * 3];
        for (yy, (ymin, kk)) in k.iter().enumerate() {
            for x in 0..w {
                for c in 0..3 {
                    let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                    for (i, &kv) in kk.iter().enumerate() {
                        acc += data[((ymin + i) * w + x) * 3 + c] as i32 * kv;
                    }
                    out[(yy * w + x) * 3 + c] = clip8(acc);
                }
            }
        }
        data = out;
    }
    Rgb {
        width: w,
        height: if height != img.height { height } else { img.height },
        data,
    }
}
