//! Sink scoring and the row kernel against copies of the same size, the rows of every layer as
//! one batch, and the whole 32-layer prefill against the CPU reference: what each shape asks.

use std::time::Instant;

use visattn::{AttnShape, BatchEntry, LayerBinding, LayerRole, Phi, Rows, VarConfig, VarKernels, VarState, VisualTokens, reference};
use wgpu::{Buffer, BufferUsages, CommandEncoder, ComputePass};

use crate::baselines::Rates;
use crate::context::{Bench, USAGE};
use crate::report::Moved;
use crate::shapes::{LAYERS, Shape};
use crate::torch::torch_anchor;

/// One layer's probabilities (in head chunks within the binding limit), a pristine copy of
/// each chunk to restore from, its hidden states and its bindings.
pub struct Layer {
    pub probs: Vec<Buffer>,
    pub pristine: Vec<Buffer>,
    pub hidden: Buffer,
    pub bindings: Vec<LayerBinding>,
}

/// A 32-layer prefill's state for one of the shapes: every query row, prepared with `cfg`.
pub fn prefill_state(b: &Bench, s: &Shape, cfg: &VarConfig, rows: Rows) -> VarState {
    let mut state = VarState::new(&b.g.ctx, s.sequence(), rows).unwrap();
    state.prepare(&b.g.queue, cfg, &s.visual(), LAYERS).unwrap();
    state
}

/// Sink scoring and the row kernel against a copy of the same size, then what the shape adds
/// (the batched layers, the whole prefill).
pub fn row_kernels(b: &Bench, k: &VarKernels, cfg: &VarConfig, s: &Shape) {
    let visual = s.visual();
    RowBench {
        b,
        k,
        cfg,
        s,
        shape: AttnShape::new(s.heads, s.tokens, s.tokens).unwrap(),
        rows_after: s.heads * s.tokens.saturating_sub(visual.first_end()),
        hidden_bytes: (s.tokens * s.hidden * 4) as u64,
        visual,
    }
    .run()
}

/// One shape's row-kernel measurements and what every part of them counts.
struct RowBench<'a> {
    b: &'a Bench,
    k: &'a VarKernels,
    cfg: &'a VarConfig,
    s: &'a Shape,
    visual: VisualTokens,
    shape: AttnShape,
    /// Rows after the first image, over all heads: the rows that may change.
    rows_after: usize,
    hidden_bytes: u64,
}

impl RowBench<'_> {
    fn run(&self) {
        let (b, k, cfg, s) = (self.b, self.k, self.cfg, self.s);
        let all = prefill_state(b, s, cfg, Rows::All);
        let fast = prefill_state(b, s, cfg, Rows::MayChange);
        // What an engine binds: rows that may change, phi only where the classes need it.
        let engine = prefill_state(b, s, cfg, Rows::MayChange).with_phi(Phi::SinksOnly);
        let (layer, p, h) = self.make_layer(&all, 3);
        let fast_bindings = self.bind_layer(&fast, &layer);

        // Bytes as every row counts them: what the kernel must read plus what it must write
        // (see `sink_moved` and `rows_moved`).
        let changed = self.changed_rows(3, &p, &h);
        let probs_bytes = (p.len() * 4) as u64;

        let probs_rates = b.rates(probs_bytes, b.repeats);
        b.baseline_lines(s.name, &probs_rates, probs_bytes);
        let hidden_rates = b.rates(self.hidden_bytes, b.repeats);

        let sink_run = |pass: &mut ComputePass| layer.bindings[0].sinks().record(pass, 3).unwrap();
        b.time_pass(&sink_run);
        // The rows-that-may-change state reads its own classes: score them once.
        b.time_pass(&|pass: &mut ComputePass| fast_bindings[0].sinks().record(pass, 3).unwrap());
        let secs = b.median_of_passes(b.repeats, &sink_run);
        b.report
            .line("sink_score", s.name, secs, Some(self.sink_moved()), Some(&hidden_rates));
        // Phi::SinksOnly: the same classes, most rows read in part. Its rate counts the bytes it
        // reads (the share of the hidden states up to each token's last checkpoint), as every
        // other row counts what its kernel reads: crediting it with the full kernel's bytes made
        // it look 13x faster than a copy.
        let early = engine.bind_sinks(k, Some(layer.hidden.as_entire_buffer_binding())).unwrap();
        let early_secs = b.median_pass(b.repeats, &|pass: &mut ComputePass| early.record(pass, 3).unwrap());
        let fraction = early_read_fraction(cfg, &h, s.hidden);
        b.report.line(
            "sink_score_sinks_only",
            s.name,
            early_secs,
            Some(self.early_moved(fraction)),
            Some(&hidden_rates),
        );
        b.report.summary(format!(
            "sink_score {}: Phi::SinksOnly reads {:.1}% of the hidden states ({:.1}x faster than every phi; same classes)",
            s.name,
            100.0 * fraction,
            secs / early_secs
        ));

        for (name, bindings, rows) in [
            ("var_rows_all", &layer.bindings, s.heads * s.tokens),
            ("var_rows_may_change", &fast_bindings, self.rows_after),
        ] {
            // encode: the rows staged in a texture where the settings say so.
            let run = |encoder: &mut CommandEncoder| {
                for binding in bindings.iter() {
                    binding.encode_rows(encoder, 3).unwrap();
                }
            };
            let secs = b.time_restored(&[&layer], b.repeats, &run);
            b.report
                .line(name, s.name, secs, Some(self.rows_moved(rows, changed)), Some(&probs_rates));
        }

        if s.batched_layers {
            self.batched_layers(&probs_rates);
        }
        if s.whole_prefill {
            self.whole_prefill(&fast, &engine, &hidden_rates);
        }
    }

    /// A host that holds every layer at once (dumps) runs the layers that share a role as a
    /// batch, sequence b = layer b: one copy and one dispatch for all their rows.
    fn batched_layers(&self, probs_rates: &Rates) {
        let (b, k, cfg, s) = (self.b, self.k, self.cfg, self.s);
        let role_layer = 3;
        let (mut all_p, mut all_h, mut changed) = (Vec::new(), Vec::new(), 0);
        for l in 0..LAYERS {
            let (p, h) = (s.probs(l), s.hidden(l));
            let mut want = p.clone();
            reference::apply_layer(
                cfg,
                cfg.role(role_layer, LAYERS),
                &self.visual,
                Some((&h, s.hidden)),
                &mut want,
                self.shape,
            )
            .unwrap();
            changed += want
                .chunks_exact(s.tokens)
                .zip(p.chunks_exact(s.tokens))
                .filter(|(a, b)| a != b)
                .count();
            all_p.extend(p);
            all_h.extend(h);
        }
        let hidden_buf = b.upload(&all_h, USAGE);
        let probs_buf = b.upload(&all_p, USAGE);
        for (name, rows_mode, rows) in [
            ("var_rows_all_32_layers", Rows::All, LAYERS * s.heads * s.tokens),
            ("var_rows_may_change_32_layers", Rows::MayChange, LAYERS * self.rows_after),
        ] {
            let mut state = VarState::new_batch(&b.g.ctx, s.sequence(), LAYERS, rows_mode).unwrap();
            let entries: Vec<BatchEntry> = (0..LAYERS)
                .map(|_| BatchEntry {
                    visual: &self.visual,
                    queries: s.tokens,
                })
                .collect();
            state.prepare_batch(&b.g.queue, cfg, &entries, LAYERS).unwrap();
            let binding = state
                .bind(
                    k,
                    Some(hidden_buf.as_entire_buffer_binding()),
                    probs_buf.as_entire_buffer_binding(),
                    0,
                )
                .unwrap();
            let layer = Layer {
                probs: vec![probs_buf.clone()],
                pristine: vec![b.upload(&all_p, BufferUsages::COPY_SRC)],
                hidden: hidden_buf.clone(),
                bindings: vec![],
            };
            b.time_pass(&|pass: &mut ComputePass| binding.sinks().record(pass, role_layer).unwrap());
            let run = |encoder: &mut CommandEncoder| binding.encode_rows(encoder, role_layer).unwrap();
            let secs = b.time_restored(&[&layer], b.repeats, &run);
            b.report
                .line(name, s.name, secs, Some(self.rows_moved(rows, changed)), Some(probs_rates));
        }
    }

    /// One whole prefill: 32 layers, sinks and rows in every layer, one encoder; every phi
    /// (`fast`), then as an engine binds it (`engine`: phi only where the classes need it); then
    /// the CPU reference on the same work.
    fn whole_prefill(&self, fast: &VarState, engine: &VarState, hidden_rates: &Rates) {
        let (b, cfg, s) = (self.b, self.cfg, self.s);
        let layers: Vec<(Layer, Vec<f32>, Vec<f32>)> = (0..LAYERS).map(|l| self.make_layer(fast, l)).collect();
        let refs: Vec<&Layer> = layers.iter().map(|(l, _, _)| l).collect();
        let engine_bindings: Vec<Vec<LayerBinding>> = refs.iter().map(|l| self.bind_layer(engine, l)).collect();
        let every_phi: Vec<&[LayerBinding]> = layers.iter().map(|(l, _, _)| &l.bindings[..]).collect();
        let engine_refs: Vec<&[LayerBinding]> = engine_bindings.iter().map(|b| &b[..]).collect();
        let time_prefill = |bindings: &[&[LayerBinding]]| {
            let run = |encoder: &mut CommandEncoder| {
                for (l, layer) in bindings.iter().enumerate() {
                    layer[0].encode(encoder, l).unwrap();
                    for b in &layer[1..] {
                        b.encode_rows(encoder, l).unwrap();
                    }
                }
            };
            b.time_restored(&refs, b.repeats.min(3), &run)
        };
        let every_phi_secs = time_prefill(&every_phi);
        let gpu_secs = time_prefill(&engine_refs);
        // Off layers need nothing; a detecting layer scores sinks; a redistributing one also
        // reads the rows that may change and writes those that do. With Phi::SinksOnly a
        // detecting layer reads only its share of the hidden states (`early`).
        let (mut moved, mut early) = (Moved::default(), Moved::default());
        for (l, (_, p, h)) in layers.iter().enumerate() {
            let role = cfg.role(l, LAYERS);
            if role == LayerRole::Off {
                continue;
            }
            moved += self.sink_moved();
            early += self.early_moved(early_read_fraction(cfg, h, s.hidden));
            if role == LayerRole::Redistribute {
                let rows = self.rows_moved(self.rows_after, self.changed_rows(l, p, h));
                moved += rows;
                early += rows;
            }
        }
        // Mostly hidden-state reads: the hidden-sized baselines are the like-for-like rates.
        let rep = &b.report;
        rep.line("var_prefill_every_phi", s.name, every_phi_secs, Some(moved), Some(hidden_rates));
        rep.line("var_prefill", s.name, gpu_secs, Some(early), Some(hidden_rates));
        rep.summary(format!(
            "var_prefill: phi only where the classes need it (Phi::SinksOnly, what engines bind) is {:.2}x the prefill with every phi; it reads {:.1} of the {:.1} MB the prefill with every phi moves, and its ratios count those",
            every_phi_secs / gpu_secs,
            early.total() / 1e6,
            moved.total() / 1e6
        ));

        let start = Instant::now();
        for (l, (_, p, h)) in layers.iter().enumerate() {
            let mut work = p.clone();
            reference::apply_layer(cfg, cfg.role(l, LAYERS), &self.visual, Some((h, s.hidden)), &mut work, self.shape).unwrap();
        }
        let cpu = start.elapsed().as_secs_f64();
        rep.line("cpu_reference_prefill", s.name, cpu, None, None);
        if rep.torch {
            torch_anchor(rep, s.name, gpu_secs);
        }
        rep.summary(format!(
            "var_prefill: GPU {:.1}x faster than the CPU reference (f64, one thread)",
            cpu / gpu_secs
        ));
    }

    /// Layer `layer` of the shape on the GPU, bound to `state` in head chunks within the
    /// binding limit; with its probabilities and hidden states on the host.
    fn make_layer(&self, state: &VarState, layer: usize) -> (Layer, Vec<f32>, Vec<f32>) {
        let (b, s) = (self.b, self.s);
        let p = s.probs(layer);
        let h = s.hidden(layer);
        let head = s.tokens * s.tokens;
        let limit = b.g.device.limits().max_storage_buffer_binding_size as usize;
        let per_chunk = (limit / (head * 4)).min(s.heads);
        let hidden = b.upload(&h, USAGE);
        let (mut probs_bufs, mut pristine, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
        for first in (0..s.heads).step_by(per_chunk) {
            let n = per_chunk.min(s.heads - first);
            let part = &p[first * head..(first + n) * head];
            let buf = b.upload(part, USAGE);
            pristine.push(b.upload(part, BufferUsages::COPY_SRC));
            bindings.push(
                state
                    .bind(
                        self.k,
                        Some(hidden.as_entire_buffer_binding()),
                        buf.as_entire_buffer_binding(),
                        first,
                    )
                    .unwrap(),
            );
            probs_bufs.push(buf);
        }
        (
            Layer {
                probs: probs_bufs,
                pristine,
                hidden,
                bindings,
            },
            p,
            h,
        )
    }

    /// A layer's buffers bound to another state, head chunks as `make_layer` cut them.
    fn bind_layer(&self, state: &VarState, layer: &Layer) -> Vec<LayerBinding> {
        let head_bytes = (self.s.tokens * self.s.tokens * 4) as u64;
        let mut first = 0;
        layer
            .probs
            .iter()
            .map(|b| {
                let binding = state
                    .bind(
                        self.k,
                        Some(layer.hidden.as_entire_buffer_binding()),
                        b.as_entire_buffer_binding(),
                        first,
                    )
                    .unwrap();
                first += (b.size() / head_bytes) as usize;
                binding
            })
            .collect()
    }

    /// Rows of layer `layer` that VAR changes (the CPU reference on its role).
    fn changed_rows(&self, layer: usize, p: &[f32], h: &[f32]) -> usize {
        let (cfg, s) = (self.cfg, self.s);
        let mut want = p.to_vec();
        reference::apply_layer(
            cfg,
            cfg.role(layer, LAYERS),
            &self.visual,
            Some((h, s.hidden)),
            &mut want,
            self.shape,
        )
        .unwrap();
        want.chunks_exact(s.tokens)
            .zip(p.chunks_exact(s.tokens))
            .filter(|(a, b)| a != b)
            .count()
    }

    /// Sink scoring reads [T, D] hidden states and the image mask, writes phi and classes.
    fn sink_moved(&self) -> Moved {
        let t = self.s.tokens as f64;
        Moved {
            read: self.hidden_bytes as f64 + t * 4.0,
            written: t * 8.0,
        }
    }

    /// Phi::SinksOnly's sink scoring reads `fraction` of the hidden states.
    fn early_moved(&self, fraction: f64) -> Moved {
        let t = self.s.tokens as f64;
        Moved {
            read: fraction * self.hidden_bytes as f64 + t * 4.0,
            written: t * 8.0,
        }
    }

    /// The row kernel reads the rows it is asked to consider and writes the rows that change
    /// (once) and a selection flag per row.
    fn rows_moved(&self, rows: usize, changed: usize) -> Moved {
        let row_bytes = (self.s.tokens * 4) as f64;
        Moved {
            read: rows as f64 * row_bytes,
            written: changed as f64 * row_bytes + rows as f64 * 4.0,
        }
    }
}

/// The share of the hidden states Phi::SinksOnly reads: per token, values up to the first
/// checkpoint (64, 256, ... as in sink_score.wgsl) where the partial sum of squares rules it
/// out, or all of them (f64 here; the kernel's margin makes the GPU read at least as much).
fn early_read_fraction(cfg: &VarConfig, hidden: &[f32], dim: usize) -> f64 {
    let mut read = 0usize;
    for x in hidden.chunks_exact(dim) {
        let top = cfg.sink_dims.iter().map(|&d| (x[d as usize] as f64).abs()).fold(0.0, f64::max);
        let (mut sum, mut at, mut stop) = (0.0f64, 0usize, 64usize);
        loop {
            let end = stop.min(dim);
            sum += x[at..end].iter().map(|&v| v as f64 * v as f64).sum::<f64>();
            at = end;
            if end == dim || top <= cfg.tau * (sum / dim as f64 + 1e-6).sqrt() * (1.0 - 1e-4) {
                break;
            }
            stop *= 4;
        }
        read += at + cfg.sink_dims.len();
    }
    read as f64 / hidden.len() as f64
}
