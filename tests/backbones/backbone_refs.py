"""Straightforward references for the backbone tests, written from the raw weights (no oodbench code)."""

import torch
import torch.nn.functional as F


def ln(x, m):
    return F.layer_norm(x, (x.shape[-1],), m.weight, m.bias, m.eps)


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def clip_reference_local(model, images):
    """GL-MCM/SeTAR value path of an open_clip CLIP, from the weights; input of the last block captured by a hook."""
    v = model.visual
    last = v.transformer.resblocks[-1]
    cap = {}
    handle = last.register_forward_pre_hook(lambda m, args: cap.__setitem__("x", args[0]))
    with torch.no_grad():
        model.encode_image(images)
    handle.remove()
    x = cap["x"]  # [B, T, W] (batch-first)
    d = x.shape[-1]
    w, b = last.attn.in_proj_weight, last.attn.in_proj_bias
    val = ln(x, last.ln_1) @ w[2 * d :].T + b[2 * d :]
    val = val @ last.attn.out_proj.weight.T + last.attn.out_proj.bias
    val = x + val
    h = quick_gelu(ln(val, last.ln_2) @ last.mlp.c_fc.weight.T + last.mlp.c_fc.bias)
    val = val + h @ last.mlp.c_proj.weight.T + last.mlp.c_proj.bias
    return (ln(val, v.ln_post)[:, 1:] @ v.proj).detach()


def hf_clip_reference(hf, images, ids):
    """Features from transformers' own CLIPModel modules: image, text, and the last layer's value path."""
    with torch.no_grad():
        image = hf.get_image_features(pixel_values=images).pooler_output
        text = hf.get_text_features(input_ids=ids).pooler_output
        hs = hf.vision_model(pixel_values=images, output_hidden_states=True).hidden_states
        x = hs[-2]  # input of the last encoder layer
        last = hf.vision_model.encoder.layers[-1]
        v = x + last.self_attn.out_proj(last.self_attn.v_proj(last.layer_norm1(x)))
        v = v + last.mlp(last.layer_norm2(v))
        local = hf.visual_projection(hf.vision_model.post_layernorm(v)[:, 1:])
    return {"image": image, "text": text, "local": local}


def swin_reference_local(model, images):
    """SeTAR's Swin-V2 local logits from the weights: last block's value path, final norm, classifier per token."""
    last = model.layers[-1].blocks[-1]
    cap = {}
    handle = last.register_forward_pre_hook(lambda m, args: cap.__setitem__("x", args[0]))
    with torch.no_grad():
        model(images)
    handle.remove()
    xin = cap["x"]  # [B, H, W, C]
    c = xin.shape[-1]
    a = last.attn
    v = xin @ a.qkv.weight[2 * c :].T + a.v_bias
    v = v @ a.proj.weight.T + a.proj.bias
    x1 = xin + ln(v, last.norm1)
    h = F.gelu(x1 @ last.mlp.fc1.weight.T + last.mlp.fc1.bias) @ last.mlp.fc2.weight.T + last.mlp.fc2.bias
    x2 = x1 + ln(h, last.norm2)
    return (ln(x2, model.norm).reshape(xin.shape[0], -1, c) @ model.head.fc.weight.T + model.head.fc.bias).detach()


def clip_outputs(b, images, prompts):
    """What the loading tests compare: global and value-path local image features, and text features."""
    with torch.no_grad():
        out = b.compute_features(images, {"image", "local"})
        out["text"] = b.encode_text(prompts)
    return out
