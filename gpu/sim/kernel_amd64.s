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

// The wide-product forms of gemvVec and gemv2Vec: the same fp32 adds in the same order with
// the same operand first, but each fp32 product a·b computed as float32(float64(a)·float64(b))
// (VCVTPS2PD, VMULPD, VCVTPD2PS). That is bitwise the fp32 product: the float64 product of
// two float32 values is exact (48 significant bits, exponent ≥ −298, no float64 under- or
// overflow), so its single rounding to float32 is the correctly rounded fp32 product,
// subnormal results included; a NaN operand keeps its payload through both conversions
// (quieted, as VMULPS quiets it), VMULPD keeps the first source's NaN where two meet, as
// VMULPS does, and 0·Inf gives the same default NaN (TestWideProductBitwise,
// TestVecKernelsBitwise). Unlike VMULPS, nothing here takes the microcode assist of a
// subnormal operand or result: a float32 subnormal is a normal float64, and the float64
// product is never subnormal. On normal data they cost more than the plain kernels (two
// conversions per product), so gemvSel/gemv2Sel run them only after subnormals were seen.
//
// Each block of eight columns runs over the whole reduction with its accumulators in
// registers, as two halves of four columns (a float64 vector holds four): X8/X9 hold c's
// (c0's) low and high half, X10/X11 c1's, X14/X15 the halves' load masks (all ones for a
// whole block, the first n mod 8 lanes for the tail block; a masked lane is neither read nor
// written), Y12 the half of a row of b in float64, Y13 the product. Y0..Y3 (Y4..Y7) hold the
// quad's coefficients of a (a1) in float64.

// WBCAST(p, x, y): y = the float32 at (p) in every float64 lane; p += the stride of a.
#define WBCAST(p, x, y) \
	VBROADCASTSS (p), x; \
	VCVTPS2PD    x, y; \
	ADDQ         R10, p

// WLOAD(off, mask): Y12 = the four float32 of b at off(R11) under mask, in float64.
#define WLOAD(off, mask) \
	VMASKMOVPS off(R11), mask, X12; \
	VCVTPS2PD  X12, Y12

// WMULB(y): X13 = the fp32 product of b (Y12) and y with b the first operand.
#define WMULB(y) \
	VMULPD     y, Y12, Y13; \
	VCVTPD2PSY Y13, X13

// WMULA(y): X13 = the fp32 product of y and b (Y12) with y the first operand.
#define WMULA(y) \
	VMULPD     Y12, y, Y13; \
	VCVTPD2PSY Y13, X13

// WADDP(acc): acc = product + acc (the product the first operand).
#define WADDP(acc) VADDPS acc, X13, acc

// WADDC(acc): acc = acc + product (the accumulator the first operand).
#define WADDC(acc) VADDPS X13, acc, acc

// WMASKS(whole, done): X14/X15 = the masks of the block at AX (R14 = bytes of the
// whole blocks, BX = n mod 8): jump to whole for a whole block, fall through for the tail
// block, jump to done past it.
#define WMASKS(whole, done) \
	CMPQ     AX, R14; \
	JLT      whole; \
	JNE      done; \
	TESTQ    BX, BX; \
	JEQ      done; \
	LEAQ     tailmask<>(SB), CX; \
	MOVQ     $8, DX; \
	SUBQ     BX, DX; \
	VMOVDQU  (CX)(DX*4), X14; \
	VMOVDQU  16(CX)(DX*4), X15

// func gemvWide(c, a *float32, as int, b *float32, bs, k, n int)
TEXT ·gemvWide(SB), NOSPLIT, $0-56
	MOVQ c+0(FP), DI
	MOVQ as+16(FP), R10
	SHLQ $2, R10
	MOVQ bs+32(FP), R12
	SHLQ $2, R12
	MOVQ n+48(FP), R14
	MOVQ R14, BX
	ANDQ $7, BX
	ANDQ $-8, R14
	SHLQ $2, R14
	XORQ AX, AX

gemvw_blk:
	WMASKS(gemvw_whole, gemvw_done)
	JMP gemvw_body

gemvw_whole:
	VPCMPEQD X14, X14, X14
	VPCMPEQD X15, X15, X15

gemvw_body:
	MOVQ a+8(FP), R8
	MOVQ b+24(FP), R11
	ADDQ AX, R11
	MOVQ k+40(FP), R13
	VMASKMOVPS (DI)(AX*1), X14, X8
	VMASKMOVPS 16(DI)(AX*1), X15, X9

gemvw_q:
	// GEMV_QUAD's operations: b the first operand of every product; the product first in
	// the first and last add, the accumulator in the middle two
	CMPQ R13, $4
	JLT  gemvw_r
	WBCAST(R8, X0, Y0)
	WBCAST(R8, X1, Y1)
	WBCAST(R8, X2, Y2)
	WBCAST(R8, X3, Y3)
	WLOAD(0, X14)
	WMULB(Y0)
	WADDP(X8)
	WLOAD(16, X15)
	WMULB(Y0)
	WADDP(X9)
	ADDQ R12, R11
	WLOAD(0, X14)
	WMULB(Y1)
	WADDC(X8)
	WLOAD(16, X15)
	WMULB(Y1)
	WADDC(X9)
	ADDQ R12, R11
	WLOAD(0, X14)
	WMULB(Y2)
	WADDC(X8)
	WLOAD(16, X15)
	WMULB(Y2)
	WADDC(X9)
	ADDQ R12, R11
	WLOAD(0, X14)
	WMULB(Y3)
	WADDP(X8)
	WLOAD(16, X15)
	WMULB(Y3)
	WADDP(X9)
	ADDQ R12, R11
	SUBQ $4, R13
	JMP  gemvw_q

gemvw_r:
	// gemv_col1's operations: b first in the product, the product first in the add
	TESTQ R13, R13
	JEQ   gemvw_store
	WBCAST(R8, X0, Y0)
	WLOAD(0, X14)
	WMULB(Y0)
	WADDP(X8)
	WLOAD(16, X15)
	WMULB(Y0)
	WADDP(X9)
	ADDQ R12, R11
	DECQ R13
	JMP  gemvw_r

gemvw_store:
	VMASKMOVPS X8, X14, (DI)(AX*1)
	VMASKMOVPS X9, X15, 16(DI)(AX*1)
	ADDQ $32, AX
	JMP  gemvw_blk

gemvw_done:
	VZEROUPPER
	RET

// func gemv2Wide(c0, c1, a0, a1 *float32, as int, b *float32, bs, k, n int)
TEXT ·gemv2Wide(SB), NOSPLIT, $0-72
	MOVQ c0+0(FP), DI
	MOVQ c1+8(FP), SI
	MOVQ as+32(FP), R10
	SHLQ $2, R10
	MOVQ bs+48(FP), R12
	SHLQ $2, R12
	MOVQ n+64(FP), R14
	MOVQ R14, BX
	ANDQ $7, BX
	ANDQ $-8, R14
	SHLQ $2, R14
	XORQ AX, AX

gemv2w_blk:
	WMASKS(gemv2w_whole, gemv2w_done)
	JMP gemv2w_body

gemv2w_whole:
	VPCMPEQD X14, X14, X14
	VPCMPEQD X15, X15, X15

gemv2w_body:
	MOVQ a0+16(FP), R8
	MOVQ a1+24(FP), R9
	MOVQ b+40(FP), R11
	ADDQ AX, R11
	MOVQ k+56(FP), R13
	VMASKMOVPS (DI)(AX*1), X14, X8
	VMASKMOVPS 16(DI)(AX*1), X15, X9
	VMASKMOVPS (SI)(AX*1), X14, X10
	VMASKMOVPS 16(SI)(AX*1), X15, X11

gemv2w_q:
	// GEMV2_QUAD's operations: for c0 the coefficient first in every product, the product
	// first in the first add, the accumulator in the others; for c1 b first in every
	// product, the accumulator first in the first three adds, the product in the last
	CMPQ R13, $4
	JLT  gemv2w_r
	WBCAST(R8, X0, Y0)
	WBCAST(R8, X1, Y1)
	WBCAST(R8, X2, Y2)
	WBCAST(R8, X3, Y3)
	WBCAST(R9, X4, Y4)
	WBCAST(R9, X5, Y5)
	WBCAST(R9, X6, Y6)
	WBCAST(R9, X7, Y7)
	WLOAD(0, X14)
	WMULA(Y0)
	WADDP(X8)
	WMULB(Y4)
	WADDC(X10)
	WLOAD(16, X15)
	WMULA(Y0)
	WADDP(X9)
	WMULB(Y4)
	WADDC(X11)
	ADDQ R12, R11
	WLOAD(0, X14)
	WMULA(Y1)
	WADDC(X8)
	WMULB(Y5)
	WADDC(X10)
	WLOAD(16, X15)
	WMULA(Y1)
	WADDC(X9)
	WMULB(Y5)
	WADDC(X11)
	ADDQ R12, R11
	WLOAD(0, X14)
	WMULA(Y2)
	WADDC(X8)
	WMULB(Y6)
	WADDC(X10)
	WLOAD(16, X15)
	WMULA(Y2)
	WADDC(X9)
	WMULB(Y6)
	WADDC(X11)
	ADDQ R12, R11
	WLOAD(0, X14)
	WMULA(Y3)
	WADDC(X8)
	WMULB(Y7)
	WADDP(X10)
	WLOAD(16, X15)
	WMULA(Y3)
	WADDC(X9)
	WMULB(Y7)
	WADDP(X11)
	ADDQ R12, R11
	SUBQ $4, R13
	JMP  gemv2w_q

gemv2w_r:
	// gemv2_col1's operations: b first in both products, the product first in both adds
	TESTQ R13, R13
	JEQ   gemv2w_store
	WBCAST(R8, X0, Y0)
	WBCAST(R9, X4, Y4)
	WLOAD(0, X14)
	WMULB(Y0)
	WADDP(X8)
	WMULB(Y4)
	WADDP(X10)
	WLOAD(16, X15)
	WMULB(Y0)
	WADDP(X9)
	WMULB(Y4)
	WADDP(X11)
	ADDQ R12, R11
	DECQ R13
	JMP  gemv2w_r

gemv2w_store:
	VMASKMOVPS X8, X14, (DI)(AX*1)
	VMASKMOVPS X9, X15, 16(DI)(AX*1)
	VMASKMOVPS X10, X14, (SI)(AX*1)
	VMASKMOVPS X11, X15, 16(SI)(AX*1)
	ADDQ $32, AX
	JMP  gemv2w_blk

gemv2w_done:
	VZEROUPPER
	RET

// The MXCSR's sticky status flags DE (an operand was subnormal) and UE (a result underflowed:
// tiny and inexact), bits 1 and 4. They are per thread and only ever set by the hardware.
#define MXCSR_DE_UE $0x12

// func gemvSel(c, a *float32, as int, b *float32, bs, k, n int) (mxcsr uint32)
//
// gemvSel runs gemvWide where the thread's DE or UE flag is set (clearing both first, so that
// they are set again on exit only if this call meets subnormals too), else gemvVec (which
// sets them where its data is subnormal, so that the next call runs wide). Both kernels give
// the same bits; the choice is speed only. It returns the MXCSR it found.
TEXT ·gemvSel(SB), NOSPLIT, $0-60
	STMXCSR mxcsr+56(FP)
	MOVL    mxcsr+56(FP), AX
	TESTL   MXCSR_DE_UE, AX
	JNZ     gemvsel_wide
	JMP     ·gemvVec(SB)

gemvsel_wide:
	MOVL    AX, BX
	ANDL    $~0x12, BX
	MOVL    BX, mxcsr+56(FP)
	LDMXCSR mxcsr+56(FP)
	MOVL    AX, mxcsr+56(FP)
	JMP     ·gemvWide(SB)

// func gemv2Sel(c0, c1, a0, a1 *float32, as int, b *float32, bs, k, n int) (mxcsr uint32)
//
// gemv2Sel is gemvSel for gemv2Vec and gemv2Wide.
TEXT ·gemv2Sel(SB), NOSPLIT, $0-76
	STMXCSR mxcsr+72(FP)
	MOVL    mxcsr+72(FP), AX
	TESTL   MXCSR_DE_UE, AX
	JNZ     gemv2sel_wide
	JMP     ·gemv2Vec(SB)

gemv2sel_wide:
	MOVL    AX, BX
	ANDL    $~0x12, BX
	MOVL    BX, mxcsr+72(FP)
	LDMXCSR mxcsr+72(FP)
	MOVL    AX, mxcsr+72(FP)
	JMP     ·gemv2Wide(SB)

// func getMXCSR() uint32
TEXT ·getMXCSR(SB), NOSPLIT, $0-4
	STMXCSR ret+0(FP)
	RET

// func setMXCSR(v uint32)
TEXT ·setMXCSR(SB), NOSPLIT, $0-4
	LDMXCSR v+0(FP)
	RET

// BCASTD(v, y): y = the 32-bit constant v in every lane.
#define BCASTD(v, x, y) \
	MOVL         v, DX; \
	VMOVD        DX, x; \
	VPBROADCASTD x, y

// func roundBF16Vec(v *float32, n int) (m int)
//
// roundBF16Vec is roundAll's bf16 loop on blocks of eight (RoundFloat32's finite case:
// round the significand to 8 bits, to nearest even, in place) from v[0] on; it stops before
// the first block with an Inf or NaN lane (RoundFloat32's other case) or fewer than eight
// elements left and returns the count done.
TEXT ·roundBF16Vec(SB), NOSPLIT, $0-24
	MOVQ v+0(FP), DI
	MOVQ n+8(FP), CX
	ANDQ $-8, CX
	XORQ AX, AX
	BCASTD($0x7f800000, X15, Y15)
	BCASTD($0x7fff, X14, Y14)
	BCASTD($1, X13, Y13)
	BCASTD($0xffff0000, X12, Y12)

rbf_loop:
	CMPQ     AX, CX
	JGE      rbf_done
	VMOVDQU  (DI)(AX*4), Y0
	VPAND    Y15, Y0, Y1
	VPCMPEQD Y15, Y1, Y1
	VPTEST   Y1, Y1
	JNZ      rbf_done
	VPSRLD   $16, Y0, Y2
	VPAND    Y13, Y2, Y2
	VPADDD   Y14, Y0, Y3
	VPADDD   Y2, Y3, Y3
	VPAND    Y12, Y3, Y3
	VMOVDQU  Y3, (DI)(AX*4)
	ADDQ     $8, AX
	JMP      rbf_loop

rbf_done:
	MOVQ AX, m+16(FP)
	VZEROUPPER
	RET

// func roundFP16Vec(v *float32, n int) (m int)
//
// roundFP16Vec is roundAll's fp16 loop on blocks of eight from v[0] on: a lane in fp16's
// normal range (biased float32 exponent 113…141) gets the significand rounded to 11 bits in
// place, as RoundFloat32's fast path; a smaller one (below 2^−14: fp16's subnormals, ±0) gets
// (|x| + 0.75) − 0.75 with x's sign — the float32 add rounds |x| to a multiple of 2^−24
// (0.75's quantum in [0.5, 1)), to nearest even (0.75 is an even multiple), which is fp16's
// subnormal rounding, up to 2^−14 included, and the subtraction is exact. It stops before the
// first block with a lane of 2^15 or more, Inf or NaN (RoundFloat32's overflow and NaN cases)
// or fewer than eight elements left and returns the count done.
TEXT ·roundFP16Vec(SB), NOSPLIT, $0-24
	MOVQ v+0(FP), DI
	MOVQ n+8(FP), CX
	ANDQ $-8, CX
	XORQ AX, AX
	BCASTD($0x7fffffff, X15, Y15)
	BCASTD($0xfff, X14, Y14)
	BCASTD($1, X13, Y13)
	BCASTD($0xffffe000, X12, Y12)
	BCASTD($112, X11, Y11)
	BCASTD($141, X10, Y10)
	BCASTD($0x3f400000, X9, Y9)

rfp_loop:
	CMPQ      AX, CX
	JGE       rfp_done
	VMOVDQU   (DI)(AX*4), Y0
	VPAND     Y15, Y0, Y1
	VPSRLD    $23, Y1, Y2
	VPCMPGTD  Y10, Y2, Y3
	VPTEST    Y3, Y3
	JNZ       rfp_done
	VPCMPGTD  Y11, Y2, Y3
	VPSRLD    $13, Y0, Y4
	VPAND     Y13, Y4, Y4
	VPADDD    Y14, Y0, Y5
	VPADDD    Y4, Y5, Y5
	VPAND     Y12, Y5, Y5
	VADDPS    Y9, Y1, Y6
	VSUBPS    Y9, Y6, Y6
	VPANDN    Y0, Y15, Y7
	VPOR      Y7, Y6, Y6
	VBLENDVPS Y3, Y5, Y6, Y8
	VMOVDQU   Y8, (DI)(AX*4)
	ADDQ      $8, AX
	JMP       rfp_loop

rfp_done:
	MOVQ AX, m+16(FP)
	VZEROUPPER
	RET
