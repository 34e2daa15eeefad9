//! The call that leaves every register as it was: how an entry site reaches the runtime
//! without costing its function anything while dormant.
//!
//! A function whose entry check calls out (`if fn_on { enter(…) }`) and then goes on with its
//! arguments must keep them, across that call, in registers the callee preserves
//! (`rbx`, `r12`–`r15`), and a function that uses one saves and restores it in its prologue
//! and epilogue on every call, armed or not: a small function paid six instructions per call
//! for a call it never makes (humantime's `Unit::from_str`). Here the generated code calls
//! through `asm!` into [`call_saving`], which saves every general-purpose register the C
//! calling convention lets a callee change, so the compiler sees a call that changes only
//! the vector and x87 registers (the `asm!` names them, and the compiler saves a live one
//! around it, in the cold branch) and keeps the arguments where they are.
//!
//! x86-64 ELF targets only (the generated code calls the runtime directly elsewhere).
//!
//! The convention (`sites_crate::by_value_calls` writes the other side):
//! - in: `rax` the function to call, an `extern "C" fn(u32, u32, u32, *const C) -> u64`;
//!   `r11d`, `r10d`, `r9d`, `r8` its arguments (the site ids, unused ones ignored, and the
//!   captures), moved to the argument registers here: the function around the site usually
//!   holds its own arguments in those;
//! - out: `rax`, the callee's result;
//! - preserved: every general-purpose register but `rax`. The AVX-512 registers
//!   (`zmm16`–`zmm31`, `k0`–`k7`) the `asm!` declares clobbered when its crate is compiled
//!   for AVX-512; where the program's sources may enable AVX-512 per function
//!   (`#[target_feature]`), which the `asm!` cannot see, the build calls
//!   [`call_saving_upper`], which saves them when the processor has them ([`detect`] at
//!   registration, before any site can be armed): the runtime's callees (glibc's string
//!   functions) use them;
//! - clobbered: `rax`, the flags, `xmm0`–`xmm15` (their `ymm`/`zmm` widths), `mm0`–`mm7`
//!   and the x87 stack, all declared by the `asm!`. AMX tile registers are neither saved nor
//!   declared: nothing the runtime calls uses them.
//!
//! The frame keeps `rbp` as its base and says so in call-frame information, so a backtrace
//! taken inside the runtime (a snapshot's stack) unwinds through it into the program.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// What [`call_saving_upper`] saves besides the general-purpose registers: 0 nothing more,
/// 1 `zmm16`–`zmm31` and the 16-bit mask registers (AVX-512F), 2 the same with 64-bit mask
/// registers (AVX-512BW). Written once by [`detect`].
static UPPER: AtomicU8 = AtomicU8::new(0);

/// Records which AVX-512 state this processor has (the registers [`call_saving_upper`] must save
/// that an `asm!` compiled for a baseline x86-64 cannot declare). Called when a table is
/// registered, before `main`, so before any site can be armed.
pub(crate) fn detect() {
    let level = if !std::arch::is_x86_feature_detected!("avx512f") {
        0
    } else if std::arch::is_x86_feature_detected!("avx512bw") {
        2
    } else {
        1
    };
    UPPER.store(level, Relaxed);
}

/// The trampolines' frame: `rbp` as its base (described in call-frame information), the
/// eight general-purpose registers a callee may change saved below it, and the callee's
/// arguments moved from registers a function's own arguments seldom use.
macro_rules! enter_frame {
    () => {
        concat!(
            "push rbp\n",
            ".cfi_def_cfa_offset 16\n",
            ".cfi_offset rbp, -16\n",
            "mov rbp, rsp\n",
            ".cfi_def_cfa_register rbp\n",
            "push rdi\n",
            "push rsi\n",
            "push rdx\n",
            "push rcx\n",
            "push r8\n",
            "push r9\n",
            "push r10\n",
            "push r11\n",
            "mov rdi, r11\n",
            "mov rsi, r10\n",
            "mov rdx, r9\n",
            "mov rcx, r8\n",
        )
    };
}

/// The registers [`enter_frame`] saved, back, and the return.
macro_rules! leave_frame {
    () => {
        concat!(
            "lea rsp, [rbp - 64]\n",
            "pop r11\n",
            "pop r10\n",
            "pop r9\n",
            "pop r8\n",
            "pop rcx\n",
            "pop rdx\n",
            "pop rsi\n",
            "pop rdi\n",
            "pop rbp\n",
            ".cfi_def_cfa rsp, 8\n",
            "ret\n",
        )
    };
}

/// The trampoline: calls `rax` with the argument registers as they are and restores every
/// general-purpose register but `rax` (see the module's documentation for the convention).
///
/// # Safety
/// Only for the generated `asm!` call of a sites crate, which sets up the registers above and
/// declares the ones this does not preserve.
#[unsafe(naked)]
pub unsafe extern "C" fn call_saving() {
    std::arch::naked_asm!(
        ".cfi_startproc",
        enter_frame!(),
        "and rsp, -16",
        "call rax",
        leave_frame!(),
        ".cfi_endproc",
    )
}

/// [`call_saving`] that also keeps `zmm16`–`zmm31` and `k0`–`k7` on a processor with
/// AVX-512: for code that may run AVX-512 instructions without its crate being compiled for
/// them (a `#[target_feature]` function), where the generated `asm!` cannot declare those
/// registers clobbered. Saving them costs about 5 ns per armed hit, so the build asks for it
/// only where the instrumented sources may enable AVX-512 themselves
/// (`sites_crate::may_enable_avx512`).
///
/// # Safety
/// As for [`call_saving`].
#[unsafe(naked)]
pub unsafe extern "C" fn call_saving_upper() {
    std::arch::naked_asm!(
        ".cfi_startproc",
        "cmp byte ptr [rip + {upper}], 0",
        "je {plain}",
        enter_frame!(),
        "and rsp, -64",
        // zmm16-zmm31 (16 x 64 bytes) and k0-k7 (8 x 8 bytes).
        "sub rsp, 1088",
        "vmovdqu64 [rsp], zmm16",
        "vmovdqu64 [rsp + 64], zmm17",
        "vmovdqu64 [rsp + 128], zmm18",
        "vmovdqu64 [rsp + 192], zmm19",
        "vmovdqu64 [rsp + 256], zmm20",
        "vmovdqu64 [rsp + 320], zmm21",
        "vmovdqu64 [rsp + 384], zmm22",
        "vmovdqu64 [rsp + 448], zmm23",
        "vmovdqu64 [rsp + 512], zmm24",
        "vmovdqu64 [rsp + 576], zmm25",
        "vmovdqu64 [rsp + 640], zmm26",
        "vmovdqu64 [rsp + 704], zmm27",
        "vmovdqu64 [rsp + 768], zmm28",
        "vmovdqu64 [rsp + 832], zmm29",
        "vmovdqu64 [rsp + 896], zmm30",
        "vmovdqu64 [rsp + 960], zmm31",
        "cmp byte ptr [rip + {upper}], 2",
        "jb 4f",
        "kmovq [rsp + 1024], k0",
        "kmovq [rsp + 1032], k1",
        "kmovq [rsp + 1040], k2",
        "kmovq [rsp + 1048], k3",
        "kmovq [rsp + 1056], k4",
        "kmovq [rsp + 1064], k5",
        "kmovq [rsp + 1072], k6",
        "kmovq [rsp + 1080], k7",
        "jmp 5f",
        "4:",
        "kmovw [rsp + 1024], k0",
        "kmovw [rsp + 1032], k1",
        "kmovw [rsp + 1040], k2",
        "kmovw [rsp + 1048], k3",
        "kmovw [rsp + 1056], k4",
        "kmovw [rsp + 1064], k5",
        "kmovw [rsp + 1072], k6",
        "kmovw [rsp + 1080], k7",
        "5:",
        "call rax",
        "vmovdqu64 zmm16, [rsp]",
        "vmovdqu64 zmm17, [rsp + 64]",
        "vmovdqu64 zmm18, [rsp + 128]",
        "vmovdqu64 zmm19, [rsp + 192]",
        "vmovdqu64 zmm20, [rsp + 256]",
        "vmovdqu64 zmm21, [rsp + 320]",
        "vmovdqu64 zmm22, [rsp + 384]",
        "vmovdqu64 zmm23, [rsp + 448]",
        "vmovdqu64 zmm24, [rsp + 512]",
        "vmovdqu64 zmm25, [rsp + 576]",
        "vmovdqu64 zmm26, [rsp + 640]",
        "vmovdqu64 zmm27, [rsp + 704]",
        "vmovdqu64 zmm28, [rsp + 768]",
        "vmovdqu64 zmm29, [rsp + 832]",
        "vmovdqu64 zmm30, [rsp + 896]",
        "vmovdqu64 zmm31, [rsp + 960]",
        "cmp byte ptr [rip + {upper}], 2",
        "jb 6f",
        "kmovq k0, [rsp + 1024]",
        "kmovq k1, [rsp + 1032]",
        "kmovq k2, [rsp + 1040]",
        "kmovq k3, [rsp + 1048]",
        "kmovq k4, [rsp + 1056]",
        "kmovq k5, [rsp + 1064]",
        "kmovq k6, [rsp + 1072]",
        "kmovq k7, [rsp + 1080]",
        "jmp 7f",
        "6:",
        "kmovw k0, [rsp + 1024]",
        "kmovw k1, [rsp + 1032]",
        "kmovw k2, [rsp + 1040]",
        "kmovw k3, [rsp + 1048]",
        "kmovw k4, [rsp + 1056]",
        "kmovw k5, [rsp + 1064]",
        "kmovw k6, [rsp + 1072]",
        "kmovw k7, [rsp + 1080]",
        "7:",
        leave_frame!(),
        ".cfi_endproc",
        upper = sym UPPER,
        plain = sym call_saving,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::arch::asm;
    use std::sync::atomic::AtomicU64;

    /// The arguments `clobber_gprs` last saw.
    static SEEN: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

    /// A callee that records its arguments and overwrites every register the C convention
    /// lets it change.
    extern "C" fn clobber_gprs(a: u32, b: u32, c: u32, v: *const u8) -> u64 {
        for (seen, x) in SEEN.iter().zip([a.into(), b.into(), c.into(), v as u64]) {
            seen.store(x, Relaxed);
        }
        // SAFETY: writes only the registers it declares.
        unsafe {
            asm!(
                "mov rdi, -1", "mov rsi, -1", "mov rdx, -1", "mov rcx, -1",
                "mov r8, -1", "mov r9, -1", "mov r10, -1", "mov r11, -1",
                out("rdi") _, out("rsi") _, out("rdx") _, out("rcx") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            );
        }
        77
    }

    /// Calls `trampoline` as the generated code does, with every general-purpose register set
    /// to a known value; returns the registers after it (rdi, rsi, rdx, rcx, r8–r11, rax).
    fn registers_after(trampoline: unsafe extern "C" fn()) -> [u64; 9] {
        let mut after = [0u64; 9];
        // SAFETY: the block declares every register the trampoline may change; `r12` (the
        // output array) and `r13` (the trampoline) are callee-saved.
        unsafe {
            asm!(
                "mov rdi, 1", "mov rsi, 2", "mov rdx, 3", "mov rcx, 4",
                "mov r8, 5", "mov r9, 6", "mov r10, 7", "mov r11, 8",
                "call r13",
                "mov [r12], rdi", "mov [r12 + 8], rsi", "mov [r12 + 16], rdx",
                "mov [r12 + 24], rcx", "mov [r12 + 32], r8", "mov [r12 + 40], r9",
                "mov [r12 + 48], r10", "mov [r12 + 56], r11", "mov [r12 + 64], rax",
                in("r13") trampoline,
                in("r12") after.as_mut_ptr(),
                inout("rax") clobber_gprs as *const () as usize => _,
                clobber_abi("C"),
            );
        }
        after
    }

    #[test]
    fn the_trampolines_keep_every_general_purpose_register_but_rax_and_move_the_arguments() {
        detect();
        for trampoline in [call_saving as unsafe extern "C" fn(), call_saving_upper] {
            let after = registers_after(trampoline);
            assert_eq!(after, [1, 2, 3, 4, 5, 6, 7, 8, 77]);
            // r11d, r10d, r9d, r8 arrive as the callee's four arguments.
            let seen: Vec<u64> = SEEN.iter().map(|s| s.load(Relaxed)).collect();
            assert_eq!(seen, [8, 7, 6, 5]);
        }
    }

    /// A callee that overwrites `zmm16`, `zmm31` and `k1`, as glibc's AVX-512 string
    /// functions may.
    #[target_feature(enable = "avx512f")]
    unsafe extern "C" fn clobber_upper(_: u32, _: u32, _: u32, _: *const u8) -> u64 {
        // SAFETY: writes only the registers it declares.
        unsafe {
            asm!(
                "vpternlogd zmm16, zmm16, zmm16, 0xff",
                "vpternlogd zmm31, zmm31, zmm31, 0xff",
                "kxnorw k1, k1, k1",
                out("zmm16") _, out("zmm31") _, out("k1") _,
            );
        }
        0
    }

    /// Sets `zmm16`, `zmm31` and `k1`, calls `call_saving_upper` with `clobber_upper`, and
    /// returns a lane of each and the mask.
    #[target_feature(enable = "avx512f")]
    unsafe fn upper_after() -> [u32; 3] {
        let mut after = [0u32; 3];
        // SAFETY: declares what the trampoline may change; `r12` (the output) is callee-saved.
        unsafe {
            asm!(
                "mov eax, 0x1234",
                "vpbroadcastd zmm16, eax",
                "mov eax, 0x5678",
                "vpbroadcastd zmm31, eax",
                "mov eax, 0x55",
                "kmovw k1, eax",
                "mov rax, r13",
                "call {t}",
                "vmovd eax, xmm16",
                "mov [r12], eax",
                "vmovd eax, xmm31",
                "mov [r12 + 4], eax",
                "kmovw eax, k1",
                "mov [r12 + 8], eax",
                t = sym call_saving_upper,
                in("r13") clobber_upper as *const () as usize,
                in("r12") after.as_mut_ptr(),
                out("zmm16") _, out("zmm31") _, out("k1") _,
                clobber_abi("C"),
            );
        }
        after
    }

    #[test]
    fn the_upper_trampoline_keeps_the_avx512_registers() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 on this processor: call_saving_upper saves nothing more");
            return;
        }
        detect();
        // SAFETY: the processor has AVX-512F.
        assert_eq!(unsafe { upper_after() }, [0x1234, 0x5678, 0x55]);
    }
}
