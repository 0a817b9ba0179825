import numpy as np

from perspnet.conventions import matrix_from_euler_deg, project_points, transform_points
from perspnet.raster import extend_raster, interpolate, rasterize, rasterize_uv


def test_single_triangle_coverage_and_barycentrics():
    pts = np.array([[2.3, 2.3], [12.6, 2.3], [2.3, 12.6]])
    r = rasterize(pts, np.ones(3), np.array([[0, 1, 2]]), 16, 16)
    # pixel centres inside the right triangle x >= 2.3, y >= 2.3, x + y <= 14.9
    yy, xx = np.mgrid[:16, :16]
    expected = (xx >= 2.3) & (yy >= 2.3) & (xx + yy <= 14.9)
    np.testing.assert_array_equal(r.mask, expected)
    l1, l2 = (4 - 2.3) / 10.3, (5 - 2.3) / 10.3  # at (u, v) = (4, 5), constant depth: affine weights
    np.testing.assert_allclose(r.bary[5, 4], [1 - l1 - l2, l1, l2], atol=1e-6)


def test_z_buffer_keeps_nearest():
    pts = np.array([[0.0, 0.0], [20, 0], [0, 20], [0, 0], [20, 0], [0, 20]])
    depth = np.array([2.0, 2, 2, 1, 1, 1])
    r = rasterize(pts, depth, np.array([[0, 1, 2], [3, 4, 5]]), 10, 10)
    assert np.all(r.tri_id[r.mask] == 1)
    np.testing.assert_allclose(r.depth[r.mask], 1.0)


def test_back_face_culling():
    pts = np.array([[2.0, 2.0], [12.0, 2.0], [2.0, 12.0]])
    tri = np.array([[0, 1, 2]])
    area = (pts[1, 0] - pts[0, 0]) * (pts[2, 1] - pts[0, 1]) - (pts[2, 0] - pts[0, 0]) * (pts[1, 1] - pts[0, 1])
    assert area > 0  # clockwise on screen -> culled
    assert not rasterize(pts, np.ones(3), tri, 16, 16, cull_back=True).mask.any()
    assert rasterize(pts, np.ones(3), tri[:, [0, 2, 1]], 16, 16, cull_back=True).mask.any()


def test_perspective_correct_reconstruction(face_model):
    """Barycentric reconstruction of the surface point projects back onto each pixel centre."""
    R = matrix_from_euler_deg(20, -10, 5)
    t = np.array([0.02, -0.01, 0.35])
    K = np.array([[900.0, 0, 320], [0, 900, 240], [0, 0, 1]])
    cam = transform_points(R, t, face_model.verts_face_m)
    r = rasterize(project_points(K, cam), cam[:, 2], face_model.triangles, 480, 640, cull_back=True)
    rows, cols = np.nonzero(r.mask)
    assert len(rows) > 10000
    pts = np.einsum("pk,pkc->pc", r.bary[rows, cols].astype(np.float64), cam[face_model.triangles[r.tri_id[rows, cols]]])
    err = np.linalg.norm(project_points(K, pts) - np.column_stack([cols, rows]), axis=1)
    assert err.max() < 1e-3
    np.testing.assert_allclose(r.depth[rows, cols], pts[:, 2], rtol=1e-5)


def test_uv_raster_interpolates_linear_function_exactly(face_model):
    size = 64
    r = rasterize_uv(face_model.uvs, face_model.triangles, size)
    # attribute = affine function of uv -> interpolation reproduces it exactly at texel centres
    attr = np.column_stack([2 * face_model.uvs[:, 0] + 1, -face_model.uvs[:, 1]])
    out = interpolate(attr, face_model.triangles, r)
    i, j = np.nonzero(r.mask)
    u, v = (j + 0.5) / size, (i + 0.5) / size
    np.testing.assert_allclose(out[i, j, 0], 2 * u + 1, atol=1e-5)
    np.testing.assert_allclose(out[i, j, 1], -v, atol=1e-5)
    assert 0.3 < r.mask.mean() < 0.9


def test_extended_uv_raster_continues_linear_function_in_a_ring(face_model):
    size = 64
    base = rasterize_uv(face_model.uvs, face_model.triangles, size)
    r = extend_raster(base, face_model.uvs * size - 0.5, face_model.triangles, ring=2.0)
    ring = r.mask & ~base.mask
    assert ring.sum() > 100  # the ring exists and is not the whole square
    assert r.mask.mean() < 0.95
    np.testing.assert_array_equal(r.tri_id[base.mask], base.tri_id[base.mask])
    attr = np.column_stack([2 * face_model.uvs[:, 0] + 1, -face_model.uvs[:, 1]])
    out = interpolate(attr, face_model.triangles, r)
    i, j = np.nonzero(ring)
    np.testing.assert_allclose(out[i, j, 0], 2 * (j + 0.5) / size + 1, atol=1e-5)
    np.testing.assert_allclose(out[i, j, 1], -(i + 0.5) / size, atol=1e-5)


def test_uv_map_target_sampled_at_vertex_uvs_returns_the_vertices(face_model):
    """The UV position map target, read back bilinearly at each vertex's UV as the network does, gives
    the mesh back: border vertices included (without the ring they mix in the zero background)."""
    import torch

    from perspnet.network.model import sample_uv_map

    size = 64
    verts = face_model.verts_face_m
    plain = rasterize_uv(face_model.uvs, face_model.triangles, size)
    extended = extend_raster(plain, face_model.uvs * size - 0.5, face_model.triangles, ring=2.0)
    uvs = torch.tensor(face_model.uvs, dtype=torch.float32)
    errors_mm = {}
    for name, raster in (("plain", plain), ("extended", extended)):
        uv_map = torch.from_numpy(interpolate(verts, face_model.triangles, raster).transpose(2, 0, 1))[None]
        sampled = sample_uv_map(uv_map, uvs)[0].numpy()
        errors_mm[name] = np.linalg.norm(sampled - verts, axis=1) * 1000
    assert errors_mm["extended"].max() < 6.0 and errors_mm["extended"].mean() < 0.6, errors_mm["extended"].mean()
    assert errors_mm["plain"].max() > 20.0  # the failure the ring fixes
