//go:build !purego

#include "textflag.h"

// func hasAESNI() bool
TEXT ·hasAESNI(SB), NOSPLIT, $0-1
	MOVL $1, AX
	XORL CX, CX
	CPUID
	SHRL $25, CX // CPUID.1:ECX bit 25 is AES-NI
	ANDL $1, CX
	MOVB CX, ret+0(FP)
	RET

// One AES round on the eight blocks X0-X7 with the round key in K.
#define ROUND8(INS, K) \
	INS K, X0; INS K, X1; INS K, X2; INS K, X3; \
	INS K, X4; INS K, X5; INS K, X6; INS K, X7

// func cfbDecryptAsm(nr int, xk *[240]byte, iv *[16]byte, dst *byte, src *byte, n int)
//
// P[i] = C[i] ^ E(C[i-1]), with C[-1] = iv. Eight blocks are encrypted
// interleaved, so AESENC's latency overlaps; X8 carries the previous
// ciphertext block from one group to the next. Every source block is read
// before its destination block is written, so dst may equal src.
TEXT ·cfbDecryptAsm(SB), NOSPLIT, $0-48
	MOVQ  nr+0(FP), CX
	MOVQ  xk+8(FP), AX
	MOVQ  iv+16(FP), R8
	MOVQ  dst+24(FP), DI
	MOVQ  src+32(FP), SI
	MOVQ  n+40(FP), DX
	SHLQ  $4, CX        // offset of the last round key
	MOVOU (R8), X8      // previous ciphertext block
	MOVOU (AX), X9      // round key 0
	CMPQ  DX, $8
	JB    tail

loop8:
	MOVOU X8, X0
	MOVOU 0(SI), X1
	MOVOU 16(SI), X2
	MOVOU 32(SI), X3
	MOVOU 48(SI), X4
	MOVOU 64(SI), X5
	MOVOU 80(SI), X6
	MOVOU 96(SI), X7
	MOVOU 112(SI), X8
	ROUND8(PXOR, X9)
	MOVQ  $16, BX

round8:
	MOVOU (AX)(BX*1), X10
	ROUND8(AESENC, X10)
	ADDQ  $16, BX
	CMPQ  BX, CX
	JB    round8
	MOVOU (AX)(CX*1), X10
	ROUND8(AESENCLAST, X10)

	// XOR in the ciphertext and store.
	MOVOU 0(SI), X10
	PXOR  X10, X0
	MOVOU X0, 0(DI)
	MOVOU 16(SI), X10
	PXOR  X10, X1
	MOVOU X1, 16(DI)
	MOVOU 32(SI), X10
	PXOR  X10, X2
	MOVOU X2, 32(DI)
	MOVOU 48(SI), X10
	PXOR  X10, X3
	MOVOU X3, 48(DI)
	MOVOU 64(SI), X10
	PXOR  X10, X4
	MOVOU X4, 64(DI)
	MOVOU 80(SI), X10
	PXOR  X10, X5
	MOVOU X5, 80(DI)
	MOVOU 96(SI), X10
	PXOR  X10, X6
	MOVOU X6, 96(DI)
	PXOR  X8, X7        // X8 is still the last source block
	MOVOU X7, 112(DI)

	ADDQ  $128, SI
	ADDQ  $128, DI
	SUBQ  $8, DX
	CMPQ  DX, $8
	JAE   loop8

tail:
	// Fewer than eight blocks left: one at a time.
	TESTQ DX, DX
	JZ    done

loop1:
	MOVOU X8, X0
	PXOR  X9, X0
	MOVQ  $16, BX

round1:
	MOVOU  (AX)(BX*1), X10
	AESENC X10, X0
	ADDQ   $16, BX
	CMPQ   BX, CX
	JB     round1
	MOVOU      (AX)(CX*1), X10
	AESENCLAST X10, X0
	MOVOU      (SI), X8
	PXOR       X8, X0
	MOVOU      X0, (DI)
	ADDQ       $16, SI
	ADDQ       $16, DI
	DECQ       DX
	JNZ        loop1

done:
	MOVOU X8, (R8)
	RET
