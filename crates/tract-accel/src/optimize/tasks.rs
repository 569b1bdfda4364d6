//! Task fan-out for our own kernels (`vnni_kernel`, `neon_kernel`, `attention_kernel`, `fast_im2col`), on tract's executor.

use std::marker::PhantomData;

/// Runs `task(0..count)` on the executor tract's own ops use (`multithread_tract_scope`), with
/// rayon's work stealing: equal tasks, so two threads finish together. Returns once every task has
/// run, so a task may borrow (or write through a [`SharedOut`] into) what the caller holds.
pub fn run_tasks(count: usize, task: impl Fn(usize) + Sync + Send) {
    use rayon::prelude::*;
    use tract_linalg::multithread::{current_tract_executor, Executor};
    match current_tract_executor() {
        Executor::MultiThread(pool) if pool.current_num_threads() > 1 && count > 1 => {
            pool.install(|| (0..count).into_par_iter().for_each(&task))
        }
        Executor::RayonGlobal if count > 1 => (0..count).into_par_iter().for_each(&task),
        _ => (0..count).for_each(task),
    }
}

/// An output buffer shared by tasks that each write their own disjoint part of it, through the raw
/// pointer [`SharedOut::get`]. It holds the buffer's mutable borrow for `'a`, so the buffer outlives
/// it and nothing else reads or writes the buffer meanwhile.
pub struct SharedOut<'a, T> {
    ptr: *mut T,
    _buffer: PhantomData<&'a mut [T]>,
}

impl<'a, T> SharedOut<'a, T> {
    pub fn new(out: &'a mut [T]) -> Self {
        SharedOut {
            ptr: out.as_mut_ptr(),
            _buffer: PhantomData,
        }
    }

    // A method, so closures capture the whole `Sync` wrapper rather than its raw-pointer field.
    pub fn get(&self) -> *mut T {
        self.ptr
    }
}

// SAFETY: `SharedOut` is a pointer into a `&mut [T]` it borrows; sending it to another thread is
// sending that borrow, sound for `T: Send`. Nothing here dereferences the pointer: every write
// through it is in an `unsafe` block of a task that writes only its own part of the buffer.
unsafe impl<T: Send> Send for SharedOut<'_, T> {}
// SAFETY: `&SharedOut` only hands out the pointer (`get`); tasks on several threads write disjoint
// parts of the buffer through it (each user's contract, stated where it writes), which for `T: Send`
// is what `&mut` to each part sent to its thread would allow.
unsafe impl<T: Send> Sync for SharedOut<'_, T> {}
