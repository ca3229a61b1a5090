"""Kernels for batches of small matrices stored batch-last, shape ``(p, q, B)``.

Why batch-last: for B independent 3x3 or 3x4 matrices, LAPACK/BLAS calls per matrix
(``torch.bmm``, ``torch.linalg.inv``) spend most of their time in per-matrix overhead.
With the batch as the contiguous last axis every entry of every matrix is a length-B
vector, so a product is one broadcast multiply and one sum, and a 3x3 inverse is a few
dozen vector operations; on 2 CPU cores this is 3-10x faster than ``bmm``/``inv``,
and on a GPU it is a handful of bandwidth-bound kernels.

Every function here is elementwise across the batch axis: instance ``b`` of the output
depends only on instance ``b`` of the inputs, and each arithmetic operation is its own
kernel (no ``alpha=``/``addcmul`` fused forms), so results do not depend on the batch
size or on where an instance sits in it (chunking is bit-for-bit invisible).
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

#: Above this many scalar products per instance the chain of outer products below
#: (2q kernels over (p, r, B) strided operands) loses to copying both operands to
#: contiguous batch-first tensors and one ``torch.bmm``; measured on 2 CPU cores at
#: B = 8192: (5, 5, 6) 500 vs 680 ns per product, (5, 6, 6) 1310 vs 744 ns,
#: (8, 8, 9) 6400 vs 800 ns (``torch.matmul`` on the permuted *views* takes a strided
#: slow path: 6500 ns). Bit-for-bit chunk invariance above it rests on ``bmm``
#: computing each product independently of the batch (tested at m = 8).
_BROADCAST_MAX = 160


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """(p, q, B) @ (q, r, B) -> (p, r, B).

    Small products of batch-last operands: a fixed-order chain of outer products.
    Otherwise, or when an operand is a batch-last view of batch-first storage (as
    the batch-first evaluation returns), one ``torch.bmm``; its result is returned as
    a batch-last view of batch-first storage, so chained products copy nothing.
    """
    p, q, _ = a.shape
    r = b.shape[1]
    if p * q * r <= _BROADCAST_MAX and a.stride(-1) == 1 and b.stride(-1) == 1:
        # Sum of q outer products (column j of a times row j of b), accumulated in a
        # fixed order: q multiplies and q - 1 adds of (p, r, B) vectors, no (p, q, r, B)
        # temporary.
        out = a[:, 0, None, :] * b[None, 0, :, :]
        for j in range(1, q):
            out = out + a[:, j, None, :] * b[None, j, :, :]
        return out
    return torch.bmm(_batch_first_operand(a), _batch_first_operand(b)).permute(1, 2, 0)


def _batch_first_operand(x: Tensor) -> Tensor:
    """(p, q, B) as a (B, p, q) ``bmm`` operand: a view when the batch is not the
    fastest axis (bmm takes plain or transposed matrices as they are), else a copy."""
    xb = x.permute(2, 0, 1)
    return xb.contiguous() if x.stride(-1) == 1 else xb


def t(a: Tensor) -> Tensor:
    """Transpose of each matrix (a view)."""
    return a.transpose(0, 1)


def gram(a: Tensor) -> Tensor:
    """a a^T for each matrix: (p, q, B) -> (p, p, B)."""
    return matmul(a, t(a))


def colsum(x: Tensor) -> Tensor:
    """Sum over every axis but the last (the batch), in a fixed sequential order.

    ``Tensor.sum`` may split or vectorise a reduction differently for different batch
    sizes, which changes the last bit; a chain of vector adds does not.
    """
    flat = x.reshape(-1, x.shape[-1])
    acc = flat[0]
    for i in range(1, flat.shape[0]):
        acc = acc + flat[i]
    return acc


def frob2(a: Tensor) -> Tensor:
    """Squared Frobenius norm of each matrix: (p, q, B) -> (B,)."""
    return colsum(a * a)


def colnorm(x: Tensor) -> Tensor:
    """Euclidean norm of each column of a (P, B) tensor (fixed summation order)."""
    return torch.sqrt(colsum(x * x))


def eye_like(m: int, like: Tensor) -> Tensor:
    """I_m as an (m, m, 1) tensor that broadcasts against (m, m, B)."""
    return torch.eye(m, dtype=like.dtype, device=like.device)[:, :, None]


def inv(a: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse and determinant of each square matrix.

    Closed-form adjugate for m <= 3 (forward error of order cond(A) * eps, like LU with
    pivoting for these sizes); one batched LU (:func:`lu_inv`) beyond. A singular
    matrix gives a non-finite inverse, which the callers flag per instance.
    """
    m = a.shape[0]
    if m == 1:
        return 1.0 / a, a[0, 0]
    if m == 2:
        det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
        adj = torch.stack(
            [torch.stack([a[1, 1], -a[0, 1]]), torch.stack([-a[1, 0], a[0, 0]])]
        )
        return adj / det, det
    if m == 3:
        (a00, a01, a02), (a10, a11, a12), (a20, a21, a22) = a[0], a[1], a[2]
        c00 = a11 * a22 - a12 * a21
        c01 = a02 * a21 - a01 * a22
        c02 = a01 * a12 - a02 * a11
        c10 = a12 * a20 - a10 * a22
        c11 = a00 * a22 - a02 * a20
        c12 = a02 * a10 - a00 * a12
        c20 = a10 * a21 - a11 * a20
        c21 = a01 * a20 - a00 * a21
        c22 = a00 * a11 - a01 * a10
        det = a00 * c00 + a01 * c10 + a02 * c20
        adj = torch.stack(
            [
                torch.stack([c00, c01, c02]),
                torch.stack([c10, c11, c12]),
                torch.stack([c20, c21, c22]),
            ]
        )
        return adj / det, det
    return lu_inv(a.permute(2, 0, 1).contiguous())


def lu_inv(ab: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse (batch-last) and determinant of batch-first ``ab`` (B, m, m): one LU.

    One batched ``lu_factor_ex`` serves both: the inverse is the LU solve against the
    identity, the determinant the product of U's diagonal times the sign of the row
    permutation (``inv_ex`` followed by ``det`` would factorise every matrix twice).
    The product is taken in a fixed order, so it does not depend on the batch.
    """
    m = ab.shape[-1]
    lu, piv, _ = torch.linalg.lu_factor_ex(ab)
    eye = torch.eye(m, dtype=ab.dtype, device=ab.device).expand_as(ab)
    res = torch.linalg.lu_solve(lu, piv, eye)
    diag = torch.diagonal(lu, dim1=1, dim2=2)
    det = diag[:, 0]
    for i in range(1, m):
        det = det * diag[:, i]
    swaps = (piv != torch.arange(1, m + 1, device=piv.device, dtype=piv.dtype)).sum(1)
    det = torch.where(swaps % 2 == 1, -det, det)
    return res.permute(1, 2, 0), det


def sym_eig_max(s: Tensor) -> Tensor:
    """Largest eigenvalue of each symmetric PSD matrix: (m, m, B) -> (B,).

    Closed form for m <= 3 (for m = 3 the trigonometric formula of Smith, 1961); the
    largest eigenvalue has no cancellation there (q + 2 p cos(phi) with q, p >= 0 and
    cos(phi) >= 1/2), so it carries a relative error of a few eps. That is why the
    engine gets sigma_min(A) as 1 / sqrt(lambda_max(A^-1 A^-T)) rather than from the
    smallest eigenvalue of A^T A, whose relative error would be cond(A)^2 eps.
    Batched ``eigvalsh`` beyond m = 3 (a vectorised Laguerre iteration on
    det(lambda I - S) was measured 2-5x slower than LAPACK at m = 5 on CPU).
    """
    m = s.shape[0]
    if m == 1:
        return s[0, 0]
    if m == 2:
        half_tr = (s[0, 0] + s[1, 1]) / 2
        half_diff = (s[0, 0] - s[1, 1]) / 2
        return half_tr + torch.sqrt(half_diff * half_diff + s[0, 1] * s[1, 0])
    if m == 3:
        p1 = s[0, 1] * s[0, 1] + s[0, 2] * s[0, 2] + s[1, 2] * s[1, 2]
        q = (s[0, 0] + s[1, 1] + s[2, 2]) / 3
        d0, d1, d2 = s[0, 0] - q, s[1, 1] - q, s[2, 2] - q
        p2 = d0 * d0 + d1 * d1 + d2 * d2 + 2 * p1
        p = torch.sqrt(p2 / 6)
        safe_p = torch.where(p > 0, p, torch.ones_like(p))
        b00, b11, b22 = d0 / safe_p, d1 / safe_p, d2 / safe_p
        b01, b02, b12 = s[0, 1] / safe_p, s[0, 2] / safe_p, s[1, 2] / safe_p
        det_b = (
            b00 * (b11 * b22 - b12 * b12)
            - b01 * (b01 * b22 - b12 * b02)
            + b02 * (b01 * b12 - b11 * b02)
        )
        r = torch.clamp(det_b / 2, -1.0, 1.0)
        phi = torch.acos(r) / 3
        return torch.where(p > 0, q + 2 * p * torch.cos(phi), q)
    return torch.linalg.eigvalsh(s.permute(2, 0, 1))[:, -1]


def to_batch_last(x: Tensor) -> Tensor:
    """(B, p, q) -> contiguous (p, q, B)."""
    return x.permute(1, 2, 0).contiguous()


def to_batch_first(x: Tensor) -> Tensor:
    """(p, q, B) -> contiguous (B, p, q)."""
    return x.permute(2, 0, 1).contiguous()
