//! What a kernel declares: its WGSL source, its bindings by name, kind, element type and
//! access, its override constants and how many items one workgroup covers. Layouts, the typed
//! inputs struct, the size checks and the bind group all follow from the declaration
//! ([`kernel!`](crate::kernel!)); tests/kernel_decls.rs reflects each one against its WGSL.

/// A uniform block's layout as Rust has it (size and field offsets), for the reflection test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniformLayout {
    /// The WGSL struct it mirrors (in `shaders/common.wgsl` or the kernel's file).
    pub wgsl: &'static str,
    pub size: u64,
    /// (field name, byte offset), in declaration order.
    pub fields: &'static [(&'static str, u64)],
}

/// A `#[repr(C)]` Rust struct laid out as a WGSL struct (see [`uniform_block!`](crate::uniform_block!)).
pub trait UniformBlock: bytemuck::Pod {
    const LAYOUT: UniformLayout;
}

/// How a storage binding is accessed (`var<storage, read>` or `read_write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// The element type of a storage array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    /// `vec4<f32>`: four f32 a load, on 16-byte boundaries.
    Vec4F32,
    /// `f16`: the kernel's WGSL starts with `enable f16;` (its prelude) and needs a device with
    /// `Features::SHADER_F16`.
    F16,
    U32,
    AtomicU32,
    /// An array of structs.
    Struct(UniformLayout),
}

impl Elem {
    pub const fn bytes(&self) -> u64 {
        match self {
            Elem::F32 | Elem::U32 | Elem::AtomicU32 => 4,
            Elem::Vec4F32 => 16,
            Elem::F16 => 2,
            Elem::Struct(l) => l.size,
        }
    }
}

/// One `@binding` of group 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingKind {
    /// `var<uniform>`; `dynamic`: bound with a dynamic offset (the per-role config slots).
    Uniform { block: UniformLayout, dynamic: bool },
    /// `var<storage>` of an array of `elem`.
    Storage { elem: Elem, access: Access },
    /// `texture_2d<f32>` read with `textureLoad` (unfilterable: rgba32float is): a copy of a
    /// storage range the kernel reads faster than the range itself on some adapters.
    Texture,
    /// `texture_2d<u32>` read with `textureLoad` (rgba32uint): raw words, 16 bytes a texel,
    /// where an adapter gathers texels faster than storage words (lavapipe: about 10x).
    TextureU32,
}

/// A binding: `@binding(i)` is the i-th of [`KernelDecl::bindings`], named as the WGSL `var`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingDecl {
    pub name: &'static str,
    pub kind: BindingKind,
    /// False where this variant of the kernel has no such binding (a field declared
    /// `only` other variants): no WGSL line, no layout entry, and its input must be `None`.
    pub present: bool,
}

/// Items (tokens, rows, row blocks...) one workgroup covers: the dispatch is
/// ceil(items / per workgroup) workgroups on a 2-D grid within the per-dimension limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerWorkgroup {
    Fixed(u32),
    /// 64 / the named override (LANES: invocations per row).
    WorkgroupOver(&'static str),
}

/// A compute kernel: the `main` entry point of [`KernelDecl::wgsl`], one bind group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelDecl {
    /// Its file (also the pipeline's label). A variant of a kernel (the same body with another
    /// prelude and element types) is named `{stem}.{variant}.wgsl`. Pipelines are cached by the
    /// kernel's type and variant, never by this name.
    pub file: &'static str,
    /// WGSL put before the bindings: [`crate::shaders::PRELUDE`] for visattn's kernels, a
    /// host's own (or nothing) for its kernels.
    pub prelude: &'static str,
    /// The file's text: everything but the `@binding` declarations, which come from `bindings`.
    pub body: &'static str,
    pub bindings: &'static [BindingDecl],
    /// The `override` constants a pipeline may set.
    pub overrides: &'static [&'static str],
    pub per_workgroup: PerWorkgroup,
}

impl KernelDecl {
    /// The `@group(0) @binding(i)` line of every binding, as the WGSL must declare them.
    pub fn binding_lines(&self) -> String {
        let mut out = format!("// {}: bindings generated from its Rust declaration\n", self.file);
        for (i, b) in self.bindings.iter().enumerate().filter(|(_, b)| b.present) {
            let (space, ty) = match b.kind {
                BindingKind::Uniform { block, .. } => ("uniform".to_string(), block.wgsl.to_string()),
                BindingKind::Storage { elem, access } => {
                    let access = match access {
                        Access::Read => "read",
                        Access::ReadWrite => "read_write",
                    };
                    let elem = match elem {
                        Elem::F32 => "f32",
                        Elem::Vec4F32 => "vec4<f32>",
                        Elem::F16 => "f16",
                        Elem::U32 => "u32",
                        Elem::AtomicU32 => "atomic<u32>",
                        Elem::Struct(l) => l.wgsl,
                    };
                    (format!("storage, {access}"), format!("array<{elem}>"))
                }
                BindingKind::Texture | BindingKind::TextureU32 => {
                    let sample = if b.kind == BindingKind::Texture { "f32" } else { "u32" };
                    out.push_str(&format!("@group(0) @binding({i}) var {}: texture_2d<{sample}>;\n", b.name));
                    continue;
                }
            };
            out.push_str(&format!("@group(0) @binding({i}) var<{space}> {}: {ty};\n", b.name));
        }
        out
    }

    /// The source a pipeline compiles: the prelude, the binding lines, the file.
    pub fn wgsl(&self) -> String {
        format!("{}{}{}", self.prelude, self.binding_lines(), self.body)
    }
}

/// A kernel type: its declarations, one per variant (most kernels have one), and its typed
/// inputs (one field per binding, shared by the variants).
pub trait Kernel: 'static {
    /// Which variant: `()` for a kernel with one, else the enum [`kernel!`](crate::kernel!)
    /// generates (its discriminants index [`Kernel::VARIANTS`]).
    type Variant: Variant;
    const VARIANTS: &'static [KernelDecl];
    /// The first (or only) variant.
    const DECL: KernelDecl = Self::VARIANTS[0];
    type Inputs<'a>: Inputs<'a>;
}

/// A kernel's variant, as an index into [`Kernel::VARIANTS`].
pub trait Variant: Copy + std::fmt::Debug + 'static {
    fn index(self) -> usize;
}

impl Variant for () {
    fn index(self) -> usize {
        0
    }
}

/// What a kernel's generated inputs struct hands to [`Context::bind`](crate::kernel::Context::bind):
/// its fields in binding order.
pub trait Inputs<'a> {
    fn args(self) -> Vec<Arg<'a>>;
}

/// One bound buffer range.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    Uniform(wgpu::BufferBinding<'a>),
    Storage(Storage<'a>),
    Texture(&'a wgpu::TextureView),
    /// An optional input left out (`None`): right only for a variant without the binding.
    Absent,
}

/// A storage range and the elements the kernel will touch in it: the one size rule is that the
/// range holds at least `need` elements (larger is fine), lies inside its buffer at an aligned
/// offset, and is within the device's binding limit.
#[derive(Debug, Clone)]
pub struct Storage<'a> {
    pub binding: wgpu::BufferBinding<'a>,
    pub need: u64,
}

impl<'a> Storage<'a> {
    pub fn new(binding: wgpu::BufferBinding<'a>, need: usize) -> Self {
        Self {
            binding,
            need: need as u64,
        }
    }
    /// A whole buffer the library made itself, sized for the kernel (no minimum to check).
    pub fn whole(buffer: &'a wgpu::Buffer) -> Self {
        Self {
            binding: buffer.as_entire_buffer_binding(),
            need: 0,
        }
    }
}

/// Declares a `#[repr(C)]` uniform (or storage-element) struct mirroring a WGSL struct, with its
/// layout for the reflection test.
#[macro_export]
#[doc(hidden)]
macro_rules! uniform_block {
    ($(#[$meta:meta])* $vis:vis struct $name:ident = $wgsl:literal { $($(#[$fmeta:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($(#[$fmeta])* pub $field: $ty),*
        }
        impl $crate::kernel::UniformBlock for $name {
            const LAYOUT: $crate::kernel::UniformLayout = $crate::kernel::UniformLayout {
                wgsl: $wgsl,
                size: ::std::mem::size_of::<$name>() as u64,
                fields: &[$((stringify!($field), ::std::mem::offset_of!($name, $field) as u64)),*],
            };
        }
    };
}

/// One declaration per kernel: a marker type implementing [`Kernel`] and its inputs struct with
/// one named field per binding, in `@binding` order. Field kinds:
/// `uniform(Block)`, `uniform(Block, dynamic)`,
/// `storage(f32 | f16 | vec4_f32 | u32 | atomic_u32 | Block, read | read_write)`,
/// `texture()` (a `texture_2d<f32>`, bound as a `&TextureView`), `texture_u32()` (a
/// `texture_2d<u32>`).
///
/// A kernel with variants (one body under several preludes and element types) names its
/// variant enum and lists the variants, each with its file label, prelude and `elem`, the
/// element type that `storage(elem, ..)` fields take in it; a field only some variants have
/// is `texture(only A | B)`, an `Option` in the inputs:
///
/// ```ignore
/// kernel! {
///     pub struct Rows, RowsInputs, RowsVariant = include_str!("rows.wgsl");
///     variants {
///         Scalar = "rows.wgsl", prelude SCALAR, elem f32;
///         Staged = "rows.staged.wgsl", prelude STAGED, elem vec4_f32;
///     }
///     overrides ["LANES"];
///     per_workgroup PerWorkgroup::Fixed(1);
///     { probs: storage(elem, read_write), staged: texture(only Staged) }
/// }
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! kernel {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident, $inputs:ident = $file:literal, $body:expr, prelude $prelude:expr;
        overrides [$($ov:literal),* $(,)?];
        per_workgroup $per:expr;
        $fields:tt
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        $crate::__kernel_inputs!($vis $inputs, $file; $fields);

        impl $crate::kernel::Kernel for $name {
            type Variant = ();
            const VARIANTS: &'static [$crate::kernel::KernelDecl] = &[$crate::kernel::KernelDecl {
                file: $file,
                prelude: $prelude,
                body: $body,
                bindings: $crate::__kernel_bindings!(@single; $fields),
                overrides: &[$($ov),*],
                per_workgroup: $per,
            }];
            type Inputs<'a> = $inputs<'a>;
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident, $inputs:ident, $variant:ident = $body:expr;
        variants { $($(#[$vmeta:meta])* $v:ident = $vfile:expr, prelude $vprelude:expr, elem $velem:tt;)+ }
        overrides [$($ov:literal),* $(,)?];
        per_workgroup $per:expr;
        $fields:tt
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        #[doc = concat!("The variants of [`", stringify!($name), "`].")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $variant {
            $($(#[$vmeta])* $v),+
        }

        impl $crate::kernel::Variant for $variant {
            fn index(self) -> usize {
                self as usize
            }
        }

        $crate::__kernel_inputs!($vis $inputs, stringify!($name); $fields);

        impl $name {
            const OVERRIDES: &'static [&'static str] = &[$($ov),*];
        }

        impl $crate::kernel::Kernel for $name {
            type Variant = $variant;
            const VARIANTS: &'static [$crate::kernel::KernelDecl] = &[$($crate::kernel::KernelDecl {
                file: $vfile,
                prelude: $vprelude,
                body: $body,
                bindings: $crate::__kernel_bindings!(@variant $variant, $v, $velem; $fields),
                overrides: $name::OVERRIDES,
                per_workgroup: $per,
            }),+];
            type Inputs<'a> = $inputs<'a>;
        }
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __kernel_inputs {
    ($vis:vis $inputs:ident, $what:expr; { $($field:ident: $kind:ident($($arg:tt)*)),* $(,)? }) => {
        #[doc = concat!("The buffers of `", $what, "`, one field per binding.")]
        $vis struct $inputs<'a> {
            $(pub $field: $crate::__kernel_field_ty!('a; $kind($($arg)*)),)*
        }

        impl<'a> $crate::kernel::Inputs<'a> for $inputs<'a> {
            fn args(self) -> Vec<$crate::kernel::Arg<'a>> {
                vec![$($crate::__kernel_arg!($kind($($arg)*); self.$field)),*]
            }
        }
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __kernel_bindings {
    (@single; { $($field:ident: $kind:ident($($arg:tt)*)),* $(,)? }) => {
        &[$($crate::__kernel_binding!($field; $kind($($arg)*); @)),*]
    };
    (@variant $variant:ident, $v:ident, $elem:tt; { $($field:ident: $kind:ident($($arg:tt)*)),* $(,)? }) => {
        &[$($crate::__kernel_binding!($field; $kind($($arg)*); $variant, $v, $elem)),*]
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __kernel_field_ty {
    ($lt:lifetime; uniform($($a:tt)*)) => { $crate::wgpu::BufferBinding<$lt> };
    ($lt:lifetime; storage($($a:tt)*)) => { $crate::kernel::Storage<$lt> };
    ($lt:lifetime; texture()) => { &$lt $crate::wgpu::TextureView };
    ($lt:lifetime; texture_u32()) => { &$lt $crate::wgpu::TextureView };
    ($lt:lifetime; texture(only $($a:tt)*)) => { ::std::option::Option<&$lt $crate::wgpu::TextureView> };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __kernel_arg {
    (uniform($($a:tt)*); $e:expr) => {
        $crate::kernel::Arg::Uniform($e)
    };
    (storage($($a:tt)*); $e:expr) => {
        $crate::kernel::Arg::Storage($e)
    };
    (texture(); $e:expr) => {
        $crate::kernel::Arg::Texture($e)
    };
    (texture_u32(); $e:expr) => {
        $crate::kernel::Arg::Texture($e)
    };
    (texture(only $($a:tt)*); $e:expr) => {
        match $e {
            ::std::option::Option::Some(view) => $crate::kernel::Arg::Texture(view),
            ::std::option::Option::None => $crate::kernel::Arg::Absent,
        }
    };
}

/// One binding's declaration; the last argument is the variant (`@` for a kernel without
/// variants): its enum, name and `elem` type.
#[macro_export]
#[doc(hidden)]
macro_rules! __kernel_binding {
    ($field:ident; uniform($block:ty); $($cur:tt)*) => {
        $crate::__kernel_binding!(@uniform $field, $block, false)
    };
    ($field:ident; uniform($block:ty, dynamic); $($cur:tt)*) => {
        $crate::__kernel_binding!(@uniform $field, $block, true)
    };
    (@uniform $field:ident, $block:ty, $dynamic:expr) => {
        $crate::kernel::BindingDecl {
            name: stringify!($field),
            kind: $crate::kernel::BindingKind::Uniform {
                block: <$block as $crate::kernel::UniformBlock>::LAYOUT,
                dynamic: $dynamic,
            },
            present: true,
        }
    };
    ($field:ident; texture(); $($cur:tt)*) => {
        $crate::kernel::BindingDecl {
            name: stringify!($field),
            kind: $crate::kernel::BindingKind::Texture,
            present: true,
        }
    };
    ($field:ident; texture_u32(); $($cur:tt)*) => {
        $crate::kernel::BindingDecl {
            name: stringify!($field),
            kind: $crate::kernel::BindingKind::TextureU32,
            present: true,
        }
    };
    ($field:ident; texture(only $($only:ident)|+); $variant:ident, $v:ident, $elem:tt) => {
        $crate::kernel::BindingDecl {
            name: stringify!($field),
            kind: $crate::kernel::BindingKind::Texture,
            present: matches!($variant::$v, $($variant::$only)|+),
        }
    };
    ($field:ident; storage(elem, $access:ident); $variant:ident, $v:ident, $elem:tt) => {
        $crate::__kernel_binding!(@storage $field, $crate::__kernel_elem!($elem), $access)
    };
    ($field:ident; storage($elem:tt, $access:ident); $($cur:tt)*) => {
        $crate::__kernel_binding!(@storage $field, $crate::__kernel_elem!($elem), $access)
    };
    (@storage $field:ident, $elem:expr, $access:ident) => {
        $crate::kernel::BindingDecl {
            name: stringify!($field),
            kind: $crate::kernel::BindingKind::Storage {
                elem: $elem,
                access: $crate::__kernel_access!($access),
            },
            present: true,
        }
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __kernel_elem {
    (f32) => {
        $crate::kernel::Elem::F32
    };
    (f16) => {
        $crate::kernel::Elem::F16
    };
    (vec4_f32) => {
        $crate::kernel::Elem::Vec4F32
    };
    (u32) => {
        $crate::kernel::Elem::U32
    };
    (atomic_u32) => {
        $crate::kernel::Elem::AtomicU32
    };
    ($block:ty) => {
        $crate::kernel::Elem::Struct(<$block as $crate::kernel::UniformBlock>::LAYOUT)
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __kernel_access {
    (read) => {
        $crate::kernel::Access::Read
    };
    (read_write) => {
        $crate::kernel::Access::ReadWrite
    };
}
