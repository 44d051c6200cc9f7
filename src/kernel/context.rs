//! The device's limits, captured once, and the pipeline cache keyed by (kernel, overrides).

use std::any::TypeId;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wgpu::{BindGroup, BindGroupLayout, BufferBinding, BufferUsages, ComputePass, ComputePipeline, Device};

use super::decl::{Access, Arg, BindingKind, Kernel, KernelDecl, PerWorkgroup, Storage, Variant};
use crate::error::{Error, Result};

/// The limits kernels and buffers are checked against, read once from the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub min_storage_buffer_offset_alignment: u64,
    pub min_uniform_buffer_offset_alignment: u64,
    pub max_compute_workgroups_per_dimension: u32,
}

/// A device's kernels: its limits, captured once, and every pipeline built so far, keyed by
/// (kernel type, variant, override values), never by tensor shapes or file names (a host's
/// kernel file named like a built-in one gets its own pipeline). Clones share the cache.
#[derive(Debug, Clone)]
pub struct Context {
    device: Device,
    limits: Limits,
    pipelines: Arc<Mutex<HashMap<Key, Arc<Pipeline>>>>,
    /// Bind groups [`Context::bind`] has made (shared by clones).
    bind_groups: Arc<AtomicU64>,
}

type Key = (TypeId, usize, Vec<(&'static str, u64)>);

/// One kernel specialisation: its bind group layout, its pipeline and its items per workgroup.
#[derive(Debug)]
pub struct Pipeline {
    kernel: TypeId,
    decl: KernelDecl,
    layout: BindGroupLayout,
    pipeline: ComputePipeline,
    per_workgroup: u32,
}

/// A pipeline with its bind group and its grid: what one dispatch needs, nothing else. The bind
/// group keeps the buffers it binds alive (uniforms made at bind time included), so bindings
/// built on a `Dispatch` hold no buffer only to keep it.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pipeline: Arc<Pipeline>,
    group: BindGroup,
    grid: (u32, u32),
    max_per_dim: u32,
}

impl Context {
    pub fn new(device: &Device) -> Self {
        let l = device.limits();
        Self {
            device: device.clone(),
            limits: Limits {
                max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                max_buffer_size: l.max_buffer_size,
                min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment as u64,
                min_uniform_buffer_offset_alignment: l.min_uniform_buffer_offset_alignment as u64,
                max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            },
            pipelines: Default::default(),
            bind_groups: Default::default(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How many bind groups [`Context::bind`] has made on this context and its clones: a host
    /// that binds once checks that a loop over bound dispatches makes none.
    pub fn bind_groups_made(&self) -> u64 {
        self.bind_groups.load(Ordering::Relaxed)
    }

    /// The largest storage buffer one binding may hold here.
    pub fn max_binding(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// `K` specialised on `overrides` (each one of its declared `override`s), built on first use.
    /// A shader the device refuses reaches wgpu's error handler; build inside
    /// [`scoped`](crate::scoped) to get it as an [`Error`].
    pub fn pipeline<K: Kernel<Variant = ()>>(&self, overrides: &[(&'static str, f64)]) -> Result<Arc<Pipeline>> {
        self.pipeline_variant::<K>((), overrides)
    }

    /// [`pipeline`](Self::pipeline) of one variant of a kernel that has several.
    pub fn pipeline_variant<K: Kernel>(&self, variant: K::Variant, overrides: &[(&'static str, f64)]) -> Result<Arc<Pipeline>> {
        let index = variant.index();
        let decl = *K::VARIANTS.get(index).ok_or_else(|| Error::Config {
            field: "variant",
            value: format!("{variant:?}"),
            reason: format!("{} declares {} variants", K::DECL.file, K::VARIANTS.len()),
        })?;
        for (name, _) in overrides {
            if !decl.overrides.contains(name) {
                return Err(Error::Config {
                    field: "overrides",
                    value: (*name).into(),
                    reason: format!("{} declares {:?}", decl.file, decl.overrides),
                });
            }
        }
        let key: Key = (TypeId::of::<K>(), index, overrides.iter().map(|&(n, v)| (n, v.to_bits())).collect());
        if let Some(p) = self.pipelines.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        let per_workgroup = match decl.per_workgroup {
            PerWorkgroup::Fixed(n) => n,
            PerWorkgroup::WorkgroupOver(name) => {
                let v = overrides
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|&(_, v)| v as u32)
                    .unwrap_or(super::WG);
                super::WG / v.max(1)
            }
        };
        // Built outside the lock, so threads building different kernels compile in parallel;
        // when two built the same one, the first in the cache stays.
        let p = Arc::new(build(&self.device, TypeId::of::<K>(), decl, overrides, per_workgroup));
        let mut cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        Ok(cache.entry(key).or_insert(p).clone())
    }

    /// Checks every input against `pipeline`'s declaration with the one size rule and builds the
    /// bind group; `items` sets the grid (see [`PerWorkgroup`]).
    pub fn bind<K: Kernel>(&self, pipeline: &Arc<Pipeline>, inputs: K::Inputs<'_>, items: u32) -> Result<Dispatch> {
        use super::decl::Inputs;
        let decl = &pipeline.decl;
        if pipeline.kernel != TypeId::of::<K>() {
            return Err(Error::Binding {
                name: "pipeline",
                reason: format!("inputs of {} bound to the pipeline of {}", K::DECL.file, decl.file),
            });
        }
        let args = inputs.args();
        let mut entries = Vec::with_capacity(args.len());
        for (i, (arg, b)) in args.into_iter().zip(decl.bindings).enumerate() {
            let resource = match (arg, b.kind) {
                (Arg::Absent, _) if !b.present => continue,
                (Arg::Absent, _) => {
                    return Err(Error::Binding {
                        name: b.name,
                        reason: format!("{} binds it: give Some", decl.file),
                    });
                }
                (_, _) if !b.present => {
                    return Err(Error::Binding {
                        name: b.name,
                        reason: format!("{} has no such binding: give None", decl.file),
                    });
                }
                (Arg::Uniform(u), BindingKind::Uniform { .. }) => wgpu::BindingResource::Buffer(u),
                (Arg::Storage(s), BindingKind::Storage { elem, .. }) => {
                    wgpu::BindingResource::Buffer(self.check(b.name, &s, elem.bytes())?)
                }
                (Arg::Texture(view), BindingKind::Texture | BindingKind::TextureU32) => wgpu::BindingResource::TextureView(view),
                _ => unreachable!("the kernel! macro pairs each field with its declared kind"),
            };
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            });
        }
        self.bind_groups.fetch_add(1, Ordering::Relaxed);
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(decl.file),
            layout: &pipeline.layout,
            entries: &entries,
        });
        let max_per_dim = self.limits.max_compute_workgroups_per_dimension;
        Ok(Dispatch {
            pipeline: pipeline.clone(),
            group,
            grid: grid(items.div_ceil(pipeline.per_workgroup), max_per_dim),
            max_per_dim,
        })
    }

    /// The one size rule: STORAGE usage, an aligned offset inside the buffer, at least `need`
    /// elements, at most the device's binding limit.
    fn check<'a>(&self, name: &'static str, s: &Storage<'a>, elem: u64) -> Result<BufferBinding<'a>> {
        let size = check_binding(&self.limits, name, &s.binding)?;
        let need = s.need * elem;
        if size < need {
            return Err(Error::Binding {
                name,
                reason: format!("{size} bytes, need {} elements of {elem} bytes = {need}", s.need),
            });
        }
        Ok(s.binding.clone())
    }

    /// A storage buffer of `bytes` (at least 4), refused over the binding limit.
    pub fn storage_buffer(&self, name: &'static str, bytes: u64, extra: BufferUsages) -> Result<wgpu::Buffer> {
        let limit = self.max_binding();
        if bytes > limit {
            return Err(Error::Limit {
                name,
                needed: bytes,
                limit,
                limit_name: if limit == self.limits.max_buffer_size {
                    "max_buffer_size"
                } else {
                    "max_storage_buffer_binding_size"
                },
            });
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes.max(4),
            usage: BufferUsages::STORAGE | BufferUsages::COPY_DST | BufferUsages::COPY_SRC | extra,
            mapped_at_creation: false,
        }))
    }

    /// A uniform buffer holding `value`.
    pub fn uniform_buffer<T: bytemuck::Pod>(&self, name: &'static str, value: &T) -> wgpu::Buffer {
        wgpu::util::DeviceExt::create_buffer_init(
            &self.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some(name),
                contents: bytemuck::bytes_of(value),
                usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
            },
        )
    }
}

impl Dispatch {
    /// Records the dispatch into the caller's pass (`offsets`: the dynamic uniform offsets).
    pub fn record(&self, pass: &mut ComputePass, offsets: &[u32]) {
        self.record_grid(pass, offsets, self.grid);
    }

    /// Records the dispatch over `items` instead of the bound count (a count the plan sets at
    /// prepare time, after binding).
    pub fn record_items(&self, pass: &mut ComputePass, offsets: &[u32], items: u32) {
        self.record_grid(pass, offsets, grid(items.div_ceil(self.pipeline.per_workgroup), self.max_per_dim));
    }

    fn record_grid(&self, pass: &mut ComputePass, offsets: &[u32], (x, y): (u32, u32)) {
        pass.set_pipeline(&self.pipeline.pipeline);
        pass.set_bind_group(0, &self.group, offsets);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// A new item count (a KV cache grew); the pipeline and the bind group stay.
    pub fn set_items(&mut self, items: u32) {
        self.grid = grid(items.div_ceil(self.pipeline.per_workgroup), self.max_per_dim);
    }

    pub fn workgroups(&self) -> u32 {
        self.grid.0 * self.grid.1
    }
}

fn build(device: &Device, kernel: TypeId, decl: KernelDecl, overrides: &[(&str, f64)], per_workgroup: u32) -> Pipeline {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = decl
        .bindings
        .iter()
        .enumerate()
        .filter(|(_, b)| b.present)
        .map(|(i, b)| {
            let buffer = |ty, min, dynamic| wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: dynamic,
                min_binding_size: NonZeroU64::new(min),
            };
            let ty = match b.kind {
                BindingKind::Uniform { block, dynamic } => buffer(wgpu::BufferBindingType::Uniform, block.size, dynamic),
                BindingKind::Storage { elem, access } => buffer(
                    wgpu::BufferBindingType::Storage {
                        read_only: access == Access::Read,
                    },
                    elem.bytes(),
                    false,
                ),
                BindingKind::Texture | BindingKind::TextureU32 => wgpu::BindingType::Texture {
                    sample_type: if b.kind == BindingKind::Texture {
                        wgpu::TextureSampleType::Float { filterable: false }
                    } else {
                        wgpu::TextureSampleType::Uint
                    },
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                },
            };
            wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty,
                count: None,
            }
        })
        .collect();
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(decl.file),
        entries: &entries,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(decl.file),
        // Guards on the overrides folded first: drivers inline before they prune (specialize.rs).
        source: wgpu::ShaderSource::Wgsl(super::specialize::specialize(&decl.wgsl(), overrides).into_owned().into()),
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(decl.file),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(decl.file),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: overrides,
            ..Default::default()
        },
        cache: None,
    });
    Pipeline {
        kernel,
        decl,
        layout,
        pipeline,
        per_workgroup,
    }
}

/// Checks a buffer range (usage, alignment, bounds, binding limit) and returns its size.
pub(crate) fn check_binding(limits: &Limits, name: &'static str, b: &BufferBinding) -> Result<u64> {
    let err = |reason: String| Error::Binding { name, reason };
    if !b.buffer.usage().contains(BufferUsages::STORAGE) {
        return Err(err("buffer was created without BufferUsages::STORAGE".into()));
    }
    let align = limits.min_storage_buffer_offset_alignment;
    if b.offset % align != 0 {
        return Err(err(format!(
            "offset {} is not a multiple of min_storage_buffer_offset_alignment {align}",
            b.offset
        )));
    }
    let available = b
        .buffer
        .size()
        .checked_sub(b.offset)
        .ok_or_else(|| err(format!("offset {} is past the end of a {}-byte buffer", b.offset, b.buffer.size())))?;
    let size = b.size.map_or(available, |s| s.get());
    if size > available {
        return Err(err(format!(
            "range of {size} bytes at offset {} overruns a {}-byte buffer",
            b.offset,
            b.buffer.size()
        )));
    }
    if size > limits.max_storage_buffer_binding_size {
        return Err(Error::Limit {
            name,
            needed: size,
            limit: limits.max_storage_buffer_binding_size,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    Ok(size)
}

/// A 2-D grid of `n` workgroups within the per-dimension limit; kernels rebuild the flat
/// index as `x + y * num_workgroups.x` and skip the overshoot.
pub(crate) fn grid(n: u32, max_per_dim: u32) -> (u32, u32) {
    let x = n.min(max_per_dim).max(1);
    (x, n.div_ceil(x))
}

#[cfg(test)]
mod tests {
    use super::grid;
    #[test]
    fn grid_covers_and_stays_in_limits() {
        assert_eq!(grid(1, 65535), (1, 1));
        assert_eq!(grid(65535, 65535), (65535, 1));
        assert_eq!(grid(65536, 65535), (65535, 2));
        let (x, y) = grid(20_480_000, 65535);
        assert!(x <= 65535 && y <= 65535 && (x as u64 * y as u64) >= 20_480_000);
    }
}
