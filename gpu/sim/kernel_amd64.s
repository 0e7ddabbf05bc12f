//go:build amd64 && !purego

#include "textflag.h"

// The vector forms of gemvGo and gemv2Go (kernel.go), eight columns per YMM register. Each
// column sees the Go loop's operations in its order, and each VADDPS/VMULPS takes as its
// first source (the middle operand in Go syntax) the operand the compiled Go loop puts first
// (the SSE destination), so that where two NaNs meet the same one propagates. Go syntax:
// VMULPS Y8, Y0, Y13 is Y13 = Y0 × Y8 with Y0 the first source.
//
// Columns run in blocks of eight: the whole blocks first, then, where n mod 8 ≠ 0, the tail
// block with masked loads and stores (VMASKMOVPS: a masked lane is neither read, so nothing
// past the end is touched, nor written) and otherwise the same instructions, its
// accumulators kept in registers over the whole reduction.
//
// Registers: R14 = bytes of the whole blocks (4·(n − n mod 8)), Y14 = the tail's mask,
// AX = byte offset of the block, R10/R12 = the strides of a and b in bytes, R13 = the
// reduction indices left.

// tailmask+4·(8−r) holds the mask of the first r lanes.
DATA tailmask<>+0(SB)/4, $0xffffffff
DATA tailmask<>+4(SB)/4, $0xffffffff
DATA tailmask<>+8(SB)/4, $0xffffffff
DATA tailmask<>+12(SB)/4, $0xffffffff
DATA tailmask<>+16(SB)/4, $0xffffffff
DATA tailmask<>+20(SB)/4, $0xffffffff
DATA tailmask<>+24(SB)/4, $0xffffffff
DATA tailmask<>+28(SB)/4, $0xffffffff
DATA tailmask<>+32(SB)/4, $0
DATA tailmask<>+36(SB)/4, $0
DATA tailmask<>+40(SB)/4, $0
DATA tailmask<>+44(SB)/4, $0
DATA tailmask<>+48(SB)/4, $0
DATA tailmask<>+52(SB)/4, $0
DATA tailmask<>+56(SB)/4, $0
DATA tailmask<>+60(SB)/4, $0
GLOBL tailmask<>(SB), RODATA|NOPTR, $64

// SETUP_TAIL turns n (in R14) into R14 and Y14 as above.
#define SETUP_TAIL \
	MOVQ R14, DX \
	ANDQ $7, DX \
	ANDQ $-8, R14 \
	SHLQ $2, R14 \
	LEAQ tailmask<>(SB), AX \
	MOVQ $8, CX \
	SUBQ DX, CX \
	VMOVDQU (AX)(CX*4), Y14

// GEMV_QUAD: c = (((v0·a0 + c) + v1·a1) + v2·a2), then v3·a3 + that; Y8..Y11 hold the four
// rows of b, Y12 holds c on entry and the result on exit.
#define GEMV_QUAD \
	VMULPS Y0, Y8, Y13 \
	VADDPS Y12, Y13, Y12 \
	VMULPS Y1, Y9, Y13 \
	VADDPS Y13, Y12, Y12 \
	VMULPS Y2, Y10, Y13 \
	VADDPS Y13, Y12, Y12 \
	VMULPS Y3, Y11, Y13 \
	VADDPS Y12, Y13, Y12

// func gemvVec(c, a *float32, as int, b *float32, bs, k, n int)
TEXT ·gemvVec(SB), NOSPLIT, $0-56
	MOVQ c+0(FP), DI
	MOVQ a+8(FP), R8
	MOVQ as+16(FP), R10
	SHLQ $2, R10
	MOVQ b+24(FP), R11
	MOVQ bs+32(FP), R12
	SHLQ $2, R12
	MOVQ k+40(FP), R13
	MOVQ n+48(FP), R14
	SETUP_TAIL
	TESTQ R14, R14
	JEQ   gemv_tailpass

gemv_quad:
	CMPQ R13, $4
	JLT  gemv_rest
	MOVQ R8, AX
	VBROADCASTSS (AX), Y0
	ADDQ R10, AX
	VBROADCASTSS (AX), Y1
	ADDQ R10, AX
	VBROADCASTSS (AX), Y2
	ADDQ R10, AX
	VBROADCASTSS (AX), Y3
	ADDQ R10, AX
	MOVQ AX, R8
	MOVQ R11, BX
	LEAQ (BX)(R12*1), CX
	LEAQ (CX)(R12*1), DX
	LEAQ (DX)(R12*1), R15
	XORQ AX, AX

gemv_col4:
	CMPQ    AX, R14
	JGE     gemv_next4
	VMOVUPS (BX)(AX*1), Y8
	VMOVUPS (CX)(AX*1), Y9
	VMOVUPS (DX)(AX*1), Y10
	VMOVUPS (R15)(AX*1), Y11
	VMOVUPS (DI)(AX*1), Y12
	GEMV_QUAD
	VMOVUPS Y12, (DI)(AX*1)
	ADDQ    $32, AX
	JMP     gemv_col4

gemv_next4:
	LEAQ (R15)(R12*1), R11
	SUBQ $4, R13
	JMP  gemv_quad

gemv_rest:
	TESTQ R13, R13
	JEQ   gemv_tailpass
	VBROADCASTSS (R8), Y0
	ADDQ  R10, R8
	XORQ  AX, AX

gemv_col1:
	// c = v·a + c
	CMPQ    AX, R14
	JGE     gemv_next1
	VMOVUPS (R11)(AX*1), Y8
	VMOVUPS (DI)(AX*1), Y12
	VMULPS  Y0, Y8, Y13
	VADDPS  Y12, Y13, Y13
	VMOVUPS Y13, (DI)(AX*1)
	ADDQ    $32, AX
	JMP     gemv_col1

gemv_next1:
	ADDQ R12, R11
	DECQ R13
	JMP  gemv_rest

gemv_tailpass:
	// The tail block over every reduction index, its accumulator kept in Y12 (a masked
	// store followed by a masked load of the same lanes, once per quad, stalls on store
	// forwarding).
	MOVQ  n+48(FP), SI
	TESTQ $7, SI
	JZ    gemv_done
	MOVQ  a+8(FP), R8
	MOVQ  b+24(FP), R11
	ADDQ  R14, R11
	ADDQ  R14, DI
	MOVQ  k+40(FP), R13
	VMASKMOVPS (DI), Y14, Y12

gemv_tq:
	CMPQ R13, $4
	JLT  gemv_tr
	VBROADCASTSS (R8), Y0
	ADDQ R10, R8
	VBROADCASTSS (R8), Y1
	ADDQ R10, R8
	VBROADCASTSS (R8), Y2
	ADDQ R10, R8
	VBROADCASTSS (R8), Y3
	ADDQ R10, R8
	VMASKMOVPS (R11), Y14, Y8
	ADDQ R12, R11
	VMASKMOVPS (R11), Y14, Y9
	ADDQ R12, R11
	VMASKMOVPS (R11), Y14, Y10
	ADDQ R12, R11
	VMASKMOVPS (R11), Y14, Y11
	ADDQ R12, R11
	GEMV_QUAD
	SUBQ $4, R13
	JMP  gemv_tq

gemv_tr:
	// c = v·a + c
	TESTQ R13, R13
	JEQ   gemv_tstore
	VBROADCASTSS (R8), Y0
	ADDQ  R10, R8
	VMASKMOVPS (R11), Y14, Y8
	ADDQ  R12, R11
	VMULPS Y0, Y8, Y13
	VADDPS Y12, Y13, Y12
	DECQ  R13
	JMP   gemv_tr

gemv_tstore:
	VMASKMOVPS Y12, Y14, (DI)

gemv_done:
	VZEROUPPER
	RET

// GEMV2_QUAD: c0 = (((x0·v0 + c0) + x1·v1) + x2·v2) + x3·v3 and
// c1 = v3·y3 + (((c1 + v0·y0) + v1·y1) + v2·y2); Y8..Y11 hold the four rows of b, Y12 and
// Y15 hold c0 and c1 on entry and the results on exit.
#define GEMV2_QUAD \
	VMULPS Y8, Y0, Y13 \
	VADDPS Y12, Y13, Y12 \
	VMULPS Y9, Y1, Y13 \
	VADDPS Y13, Y12, Y12 \
	VMULPS Y10, Y2, Y13 \
	VADDPS Y13, Y12, Y12 \
	VMULPS Y11, Y3, Y13 \
	VADDPS Y13, Y12, Y12 \
	VMULPS Y4, Y8, Y13 \
	VADDPS Y13, Y15, Y15 \
	VMULPS Y5, Y9, Y13 \
	VADDPS Y13, Y15, Y15 \
	VMULPS Y6, Y10, Y13 \
	VADDPS Y13, Y15, Y15 \
	VMULPS Y7, Y11, Y13 \
	VADDPS Y15, Y13, Y15

// func gemv2Vec(c0, c1, a0, a1 *float32, as int, b *float32, bs, k, n int)
TEXT ·gemv2Vec(SB), NOSPLIT, $0-72
	MOVQ c0+0(FP), DI
	MOVQ c1+8(FP), SI
	MOVQ a0+16(FP), R8
	MOVQ a1+24(FP), R9
	MOVQ as+32(FP), R10
	SHLQ $2, R10
	MOVQ b+40(FP), R11
	MOVQ bs+48(FP), R12
	SHLQ $2, R12
	MOVQ k+56(FP), R13
	MOVQ n+64(FP), R14
	SETUP_TAIL
	// up to two whole blocks: each over every reduction index with its accumulators in
	// registers (the store and reload of c once per quad would be the critical path);
	// more: quad by quad over all blocks, whose chains overlap
	XORQ AX, AX
	CMPQ R14, $64
	JLE  gemv2_blk

gemv2_quad:
	CMPQ R13, $4
	JLT  gemv2_rest
	MOVQ R8, AX
	VBROADCASTSS (AX), Y0
	ADDQ R10, AX
	VBROADCASTSS (AX), Y1
	ADDQ R10, AX
	VBROADCASTSS (AX), Y2
	ADDQ R10, AX
	VBROADCASTSS (AX), Y3
	ADDQ R10, AX
	MOVQ AX, R8
	MOVQ R9, AX
	VBROADCASTSS (AX), Y4
	ADDQ R10, AX
	VBROADCASTSS (AX), Y5
	ADDQ R10, AX
	VBROADCASTSS (AX), Y6
	ADDQ R10, AX
	VBROADCASTSS (AX), Y7
	ADDQ R10, AX
	MOVQ AX, R9
	MOVQ R11, BX
	LEAQ (BX)(R12*1), CX
	LEAQ (CX)(R12*1), DX
	LEAQ (DX)(R12*1), R15
	XORQ AX, AX

gemv2_col4:
	CMPQ    AX, R14
	JGE     gemv2_next4
	VMOVUPS (BX)(AX*1), Y8
	VMOVUPS (CX)(AX*1), Y9
	VMOVUPS (DX)(AX*1), Y10
	VMOVUPS (R15)(AX*1), Y11
	VMOVUPS (DI)(AX*1), Y12
	VMOVUPS (SI)(AX*1), Y15
	GEMV2_QUAD
	VMOVUPS Y12, (DI)(AX*1)
	VMOVUPS Y15, (SI)(AX*1)
	ADDQ    $32, AX
	JMP     gemv2_col4

gemv2_next4:
	LEAQ (R15)(R12*1), R11
	SUBQ $4, R13
	JMP  gemv2_quad

gemv2_rest:
	TESTQ R13, R13
	JEQ   gemv2_tailpass
	VBROADCASTSS (R8), Y0
	VBROADCASTSS (R9), Y4
	ADDQ  R10, R8
	ADDQ  R10, R9
	XORQ  AX, AX

gemv2_col1:
	// c0 = v·x + c0; c1 = v·y + c1
	CMPQ    AX, R14
	JGE     gemv2_next1
	VMOVUPS (R11)(AX*1), Y8
	VMOVUPS (DI)(AX*1), Y12
	VMOVUPS (SI)(AX*1), Y15
	VMULPS  Y0, Y8, Y13
	VADDPS  Y12, Y13, Y12
	VMULPS  Y4, Y8, Y13
	VADDPS  Y15, Y13, Y15
	VMOVUPS Y12, (DI)(AX*1)
	VMOVUPS Y15, (SI)(AX*1)
	ADDQ    $32, AX
	JMP     gemv2_col1

gemv2_next1:
	ADDQ R12, R11
	DECQ R13
	JMP  gemv2_rest

gemv2_blk:
	// each whole block over every reduction index, c0 and c1 kept in Y12 and Y15
	CMPQ AX, R14
	JGE  gemv2_tailpass
	MOVQ a0+16(FP), R8
	MOVQ a1+24(FP), R9
	MOVQ b+40(FP), R11
	ADDQ AX, R11
	MOVQ k+56(FP), R13
	VMOVUPS (DI)(AX*1), Y12
	VMOVUPS (SI)(AX*1), Y15

gemv2_bq:
	CMPQ R13, $4
	JLT  gemv2_br
	VBROADCASTSS (R8), Y0
	ADDQ R10, R8
	VBROADCASTSS (R8), Y1
	ADDQ R10, R8
	VBROADCASTSS (R8), Y2
	ADDQ R10, R8
	VBROADCASTSS (R8), Y3
	ADDQ R10, R8
	VBROADCASTSS (R9), Y4
	ADDQ R10, R9
	VBROADCASTSS (R9), Y5
	ADDQ R10, R9
	VBROADCASTSS (R9), Y6
	ADDQ R10, R9
	VBROADCASTSS (R9), Y7
	ADDQ R10, R9
	VMOVUPS (R11), Y8
	ADDQ R12, R11
	VMOVUPS (R11), Y9
	ADDQ R12, R11
	VMOVUPS (R11), Y10
	ADDQ R12, R11
	VMOVUPS (R11), Y11
	ADDQ R12, R11
	GEMV2_QUAD
	SUBQ $4, R13
	JMP  gemv2_bq

gemv2_br:
	TESTQ R13, R13
	JEQ   gemv2_bstore
	VBROADCASTSS (R8), Y0
	ADDQ  R10, R8
	VBROADCASTSS (R9), Y4
	ADDQ  R10, R9
	VMOVUPS (R11), Y8
	ADDQ  R12, R11
	VMULPS Y0, Y8, Y13
	VADDPS Y12, Y13, Y12
	VMULPS Y4, Y8, Y13
	VADDPS Y15, Y13, Y15
	DECQ  R13
	JMP   gemv2_br

gemv2_bstore:
	VMOVUPS Y12, (DI)(AX*1)
	VMOVUPS Y15, (SI)(AX*1)
	ADDQ    $32, AX
	JMP     gemv2_blk

gemv2_tailpass:
	// The tail block over every reduction index, c0 and c1 kept in Y12 and Y15 (see
	// gemv_tailpass).
	TESTQ $7, n+64(FP)
	JZ    gemv2_done
	MOVQ  a0+16(FP), R8
	MOVQ  a1+24(FP), R9
	MOVQ  b+40(FP), R11
	ADDQ  R14, R11
	ADDQ  R14, DI
	ADDQ  R14, SI
	MOVQ  k+56(FP), R13
	VMASKMOVPS (DI), Y14, Y12
	VMASKMOVPS (SI), Y14, Y15

gemv2_tq:
	CMPQ R13, $4
	JLT  gemv2_tr
	VBROADCASTSS (R8), Y0
	ADDQ R10, R8
	VBROADCASTSS (R8), Y1
	ADDQ R10, R8
	VBROADCASTSS (R8), Y2
	ADDQ R10, R8
	VBROADCASTSS (R8), Y3
	ADDQ R10, R8
	VBROADCASTSS (R9), Y4
	ADDQ R10, R9
	VBROADCASTSS (R9), Y5
	ADDQ R10, R9
	VBROADCASTSS (R9), Y6
	ADDQ R10, R9
	VBROADCASTSS (R9), Y7
	ADDQ R10, R9
	VMASKMOVPS (R11), Y14, Y8
	ADDQ R12, R11
	VMASKMOVPS (R11), Y14, Y9
	ADDQ R12, R11
	VMASKMOVPS (R11), Y14, Y10
	ADDQ R12, R11
	VMASKMOVPS (R11), Y14, Y11
	ADDQ R12, R11
	GEMV2_QUAD
	SUBQ $4, R13
	JMP  gemv2_tq

gemv2_tr:
	// c0 = v·x + c0; c1 = v·y + c1
	TESTQ R13, R13
	JEQ   gemv2_tstore
	VBROADCASTSS (R8), Y0
	ADDQ  R10, R8
	VBROADCASTSS (R9), Y4
	ADDQ  R10, R9
	VMASKMOVPS (R11), Y14, Y8
	ADDQ  R12, R11
	VMULPS Y0, Y8, Y13
	VADDPS Y12, Y13, Y12
	VMULPS Y4, Y8, Y13
	VADDPS Y15, Y13, Y15
	DECQ  R13
	JMP   gemv2_tr

gemv2_tstore:
	VMASKMOVPS Y12, Y14, (DI)
	VMASKMOVPS Y15, Y14, (SI)

gemv2_done:
	VZEROUPPER
	RET
