//! `--png`: one layer's attention row drawn by the heatmap pipeline, before and after VAR.

use std::path::{Path, PathBuf};

use clap::Args;
use visattn::heatmap::{Heatmap, render_to_pixels};
use visattn::output::{StagedFile, Use};

/// Flags of the heatmap picture.
#[derive(Args, Debug, Clone, Default)]
pub struct PictureArgs {
    /// Write a heatmap of one layer's attention before and after VAR to this PNG.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// The layer to draw (default: the middle layer).
    #[arg(long)]
    pub layer: Option<usize>,
    /// A head, or `mean` for the mean over the heads whose row was selected (default).
    #[arg(long, default_value = "mean")]
    pub head: String,
    /// The query row (default: the last row, the last text token).
    #[arg(long)]
    pub row: Option<usize>,
    /// Picture size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1024x512")]
    pub size: String,
    /// A PNG of the image to draw under the patch grid (else the grid alone).
    #[arg(long)]
    pub image: Option<PathBuf>,
}

impl PictureArgs {
    /// The files these flags read and write, for visattn::output::check_distinct.
    pub fn paths(&self) -> Vec<(&'static str, &Path, Use)> {
        let png = self.png.as_deref().map(|p| ("--png", p, Use::Write));
        let image = self
            .image
            .as_deref()
            .filter(|_| self.png.is_some())
            .map(|p| ("--image", p, Use::Read));
        png.into_iter().chain(image).collect()
    }

    pub fn layer_or(&self, layers: usize) -> usize {
        self.layer.unwrap_or(layers / 2)
    }

    fn size(&self) -> Result<(u32, u32), String> {
        let (w, h) = self
            .size
            .split_once('x')
            .ok_or_else(|| format!("--size {}: expected WIDTHxHEIGHT", self.size))?;
        let parse = |v: &str| {
            v.parse::<u32>()
                .ok()
                .filter(|&n| (16..=8192).contains(&n))
                .ok_or_else(|| format!("--size {}: sides must be 16..8192 pixels", self.size))
        };
        Ok((parse(w)?, parse(h)?))
    }

    /// Checks the flags against the data before any GPU work.
    pub fn check(&self, layers: usize, heads: usize, queries: usize, image_len: usize) -> Result<(), String> {
        if self.png.is_none() {
            return Ok(());
        }
        self.size()?;
        if self.layer_or(layers) >= layers {
            return Err(format!("--layer {} out of range for {layers} layers", self.layer_or(layers)));
        }
        if self.head != "mean" && !self.head.parse::<usize>().is_ok_and(|h| h < heads) {
            return Err(format!("--head {}: expected `mean` or a head below {heads}", self.head));
        }
        if self.row.is_some_and(|r| r >= queries) {
            return Err(format!("--row {} out of range for {queries} query rows", self.row.unwrap_or(0)));
        }
        visattn::dump::patch_grid(visattn::ImageSpan::new(0, image_len)).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// A drawn heatmap, not yet on disk.
pub struct Drawn {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

impl Drawn {
    /// The PNG written beside `path`, renamed into place by `commit` once the program's other
    /// outputs exist (see visattn::output).
    pub fn stage(&self, path: &Path) -> Result<StagedFile, String> {
        StagedFile::write(path, |tmp| {
            write_png(tmp, self.width, self.height, &self.rgba).map_err(|e| visattn::Error::Io(format!("{}: {e}", path.display())))
        })
        .map_err(|e| e.to_string())
    }
}

/// One layer's attention before and after VAR: `before` / `after` [H, Q, K], the rows'
/// `selected` flags [H, Q], `sinks` [K].
pub struct Layer<'a> {
    /// Which layer it is (for the caption).
    pub index: usize,
    pub shape: visattn::AttnShape,
    pub before: &'a [f32],
    pub after: &'a [f32],
    pub selected: &'a [bool],
    pub sinks: &'a [bool],
}

/// Draws row `args.row` (default the last) of `layer`, the image span as a square grid.
pub fn draw(g: &visattn::util::Gpu, args: &PictureArgs, layer: Layer, image: visattn::ImageSpan) -> Result<Drawn, String> {
    let Layer {
        index,
        shape,
        before,
        after,
        selected,
        sinks,
    } = layer;
    let (heads, queries, keys) = (shape.heads, shape.queries, shape.keys);
    let (image_start, image_len) = (image.start, image.len);
    let (width, height) = args.size()?;
    let grid = (image_len as f64).sqrt().round() as usize;
    let row = args.row.unwrap_or(queries - 1);
    let chosen: Vec<usize> = match args.head.as_str() {
        "mean" => {
            let sel: Vec<usize> = (0..heads).filter(|&h| selected[h * queries + row]).collect();
            if sel.is_empty() { (0..heads).collect() } else { sel }
        }
        h => vec![h.parse::<usize>().map_err(|_| format!("--head {h}"))?],
    };
    let mean = |v: &[f32], key: usize| chosen.iter().map(|&h| v[(h * queries + row) * keys + key]).sum::<f32>() / chosen.len() as f32;
    let b: Vec<f32> = (0..image_len).map(|p| mean(before, image_start + p)).collect();
    let a: Vec<f32> = (0..image_len).map(|p| mean(after, image_start + p)).collect();
    let s: Vec<bool> = (0..image_len).map(|p| sinks[image_start + p]).collect();
    let picture = args.image.as_deref().map(read_png).transpose()?;
    let heads_shown = match chosen[..] {
        [h] if args.head != "mean" => format!("head {h}"),
        _ => format!("mean of {} heads", chosen.len()),
    };
    let caption = format!("layer {index}, query row {row}, {heads_shown}");
    // Every GPU step inside an error scope: a validation error is a message, never a panic.
    let rgba = visattn::scoped_blocking(&g.device, || -> visattn::Result<Vec<u8>> {
        let hm = Heatmap::new(&g.ctx, wgpu::TextureFormat::Rgba8Unorm)?;
        let target = hm.target_over(
            &g.device,
            picture.as_ref().map(|(rgba, w)| (&g.queue, rgba.as_slice(), *w)),
            grid,
            width,
            height,
        )?;
        hm.upload(&g.queue, &target, &b, &a, &s)?;
        target.set_caption(&g.queue, &caption)?;
        render_to_pixels(&g.device, &g.queue, &hm, &target, width, height)
    })
    .and_then(|r| r)
    .map_err(|e| e.to_string())?;
    Ok(Drawn { width, height, rgba })
}

/// The largest side of a picture under the heatmap (WebGPU's default max_texture_dimension_2d).
const MAX_PICTURE_SIDE: usize = 8192;

/// Any 8- or 16-bit PNG as RGBA8 pixels and its width.
pub fn read_png(path: &Path) -> Result<(Vec<u8>, u32), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| err(&e))?;
    // The header's declared size is checked before anything is allocated for it: a 69-byte
    // file may declare 60000x60000 pixels. Pictures are drawn from one texture, whose sides
    // WebGPU's default limits cap at 8192; the decoder's own byte limit backs that up.
    let limits = png::Limits {
        bytes: MAX_PICTURE_SIDE * MAX_PICTURE_SIDE * 8,
    };
    let mut decoder = png::Decoder::new_with_limits(std::io::BufReader::new(file), limits);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| err(&e))?;
    let (w, h) = (reader.info().width, reader.info().height);
    if w as usize > MAX_PICTURE_SIDE || h as usize > MAX_PICTURE_SIDE {
        return Err(err(&format!(
            "{w}x{h} pixels: pictures under the heatmap may be at most {MAX_PICTURE_SIDE} pixels a side"
        )));
    }
    let mut buf = vec![0; reader.output_buffer_size().ok_or_else(|| err(&"image too large"))?];
    let info = reader.next_frame(&mut buf).map_err(|e| err(&e))?;
    let px = (info.width * info.height) as usize;
    let rgba: Vec<u8> = match info.color_type {
        png::ColorType::Rgba => buf[..px * 4].to_vec(),
        png::ColorType::Rgb => buf[..px * 3].chunks(3).flat_map(|c| [c[0], c[1], c[2], 255]).collect(),
        png::ColorType::GrayscaleAlpha => buf[..px * 2].chunks(2).flat_map(|c| [c[0], c[0], c[0], c[1]]).collect(),
        png::ColorType::Grayscale => buf[..px].iter().flat_map(|&g| [g, g, g, 255]).collect(),
        png::ColorType::Indexed => return Err(err(&"indexed colour was not expanded")),
    };
    Ok((rgba, info.width))
}

/// Writes `path` itself (callers stage through a temporary name).
fn write_png(path: &Path, width: u32, height: u32, rgba: &[u8]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgba).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}
