//! Task fan-out for our own kernels (`vnni_kernel`, `attention_kernel`, `fast_im2col`), on tract's executor.

/// Runs `task(0..count)` on the executor tract's own ops use (`multithread_tract_scope`), with
/// rayon's work stealing: equal tasks, so two threads finish together.
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

/// An output pointer shared by tasks that each write their own disjoint part of it.
pub struct SharedOut<T>(*mut T);

impl<T> SharedOut<T> {
    pub fn new(out: &mut [T]) -> Self {
        SharedOut(out.as_mut_ptr())
    }

    // A method, so closures capture the whole `Sync` wrapper rather than its raw-pointer field.
    pub fn get(&self) -> *mut T {
        self.0
    }
}

// SAFETY: the users' contract: each task writes its own part, and the buffer outlives the tasks.
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}
