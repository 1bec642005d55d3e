"""embedText, rerankText and the control plane (ListModels paging, endpoints) through the SDK."""

from __future__ import annotations

import base64
import math
import struct

import oci
import pytest

M = oci.generative_ai_inference.models
G = oci.generative_ai.models


def embed(emu, model, **kw):
    return M.EmbedTextDetails(compartment_id=emu.compartment_id, serving_mode=M.OnDemandServingMode(model_id=model),
                              **kw)


def test_embed_dims_and_determinism(emulator, client):
    r = client.embed_text(embed(emulator, "cohere.embed-english-v3.0", inputs=["hello world", "goodbye"]))
    assert r.headers["content-type"] == "application/json"
    res = r.data
    assert isinstance(res, M.EmbedTextResult)
    assert [len(v) for v in res.embeddings] == [1024, 1024]
    assert abs(math.sqrt(sum(x * x for x in res.embeddings[0])) - 1) < 1e-3
    assert res.usage.prompt_tokens == 3 and res.usage.total_tokens == 3
    again = client.embed_text(embed(emulator, "cohere.embed-english-v3.0", inputs=["hello world"])).data
    assert again.embeddings[0] == res.embeddings[0]
    light = client.embed_text(embed(emulator, "cohere.embed-english-light-v3.0", inputs=["x"])).data
    assert len(light.embeddings[0]) == 384
    v4 = client.embed_text(embed(emulator, "cohere.embed-v4.0", inputs=["x"])).data
    assert len(v4.embeddings[0]) == 1536
    v4 = client.embed_text(embed(emulator, "cohere.embed-v4.0", inputs=["x"], output_dimensions=256)).data
    assert len(v4.embeddings[0]) == 256
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.embed_text(embed(emulator, "cohere.embed-v4.0", inputs=["x"], output_dimensions=100))
    assert exc.value.status == 400 and "outputDimensions" in exc.value.message
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.embed_text(embed(emulator, "cohere.embed-english-v3.0", inputs=["x"], output_dimensions=256))
    assert exc.value.status == 400


def test_embed_similar_texts_are_closer(emulator, client):
    vecs = client.embed_text(embed(emulator, "cohere.embed-english-v3.0", inputs=[
        "the cat sat on the mat", "the cat sat on a mat", "quarterly revenue grew strongly"])).data.embeddings

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert dot(vecs[0], vecs[1]) > dot(vecs[0], vecs[2])


def test_embed_limits_truncate_types_echo(emulator, client):
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.embed_text(embed(emulator, "cohere.embed-english-v3.0", inputs=["x"] * 97))
    assert exc.value.status == 400 and "96" in exc.value.message
    assert len(client.embed_text(embed(emulator, "cohere.embed-english-v3.0", inputs=["x"] * 96)).data.embeddings) == 96
    long = " ".join(["word"] * 600)
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.embed_text(embed(emulator, "cohere.embed-english-v3.0", inputs=[long], truncate="NONE"))
    assert exc.value.status == 400 and "truncate" in exc.value.message
    r = client.embed_text(embed(emulator, "cohere.embed-english-v3.0", inputs=[long], truncate="END")).data
    assert r.usage.prompt_tokens == 512
    r = client.embed_text(embed(emulator, "cohere.embed-v4.0", inputs=["ab", "cd"], is_echo=True,
                                embedding_types=["float", "base64", "int8"], input_type="SEARCH_QUERY",
                                output_dimensions=512)).data
    assert r.inputs == ["ab", "cd"]
    by_type = r.embeddings_by_type
    assert set(by_type) == {"float", "base64", "int8"}
    decoded = struct.unpack("<512f", base64.b64decode(by_type["base64"][0]))
    assert abs(decoded[0] - by_type["float"][0][0]) < 1e-6
    assert all(-128 <= x <= 127 for x in by_type["int8"][0])


def test_embed_images(emulator, client):
    url = "data:image/png;base64,iVBORw0KGgo="
    r = client.embed_text(embed(emulator, "cohere.embed-v4.0", inputs=[url], input_type="IMAGE")).data
    assert len(r.embeddings) == 1
    r = client.embed_text(embed(emulator, "cohere.embed-v4.0", embed_contents=[
        M.EmbedTextContent(text="caption"), M.EmbedImageContent(image_url=M.ImageUrl(url=url))])).data
    assert len(r.embeddings) == 2
    with pytest.raises(oci.exceptions.ServiceError):
        client.embed_text(embed(emulator, "cohere.embed-english-v3.0", inputs=[url], input_type="IMAGE"))
    with pytest.raises(oci.exceptions.ServiceError):
        client.embed_text(embed(emulator, "cohere.embed-v4.0", inputs=[url, url], input_type="IMAGE"))


def test_embed_with_chat_model_is_400(emulator, client):
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.embed_text(embed(emulator, "meta.llama-3.3-70b-instruct", inputs=["x"]))
    assert exc.value.status == 400


def test_rerank(emulator, client):
    docs = ["Paris is the capital of France", "Bananas are yellow", "France has many cities like Paris"]
    d = M.RerankTextDetails(compartment_id=emulator.compartment_id, input="capital of France",
                            serving_mode=M.OnDemandServingMode(model_id="cohere.rerank-v4.0-fast"),
                            documents=docs, top_n=2, is_echo=True)
    r = client.rerank_text(d).data
    assert isinstance(r, M.RerankTextResult)
    assert [x.index for x in r.document_ranks] == [0, 2]
    assert r.document_ranks[0].relevance_score >= r.document_ranks[1].relevance_score
    assert r.document_ranks[0].document.text == docs[0]
    d.top_n, d.is_echo = None, None
    r = client.rerank_text(d).data
    assert len(r.document_ranks) == 3 and r.document_ranks[0].document is None
    d.serving_mode = M.OnDemandServingMode(model_id="cohere.rerank.v3-5")
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.rerank_text(d)
    assert exc.value.status == 400 and "dedicated" in exc.value.message
    ep = next(e["id"] for e in emulator.catalog()["endpoints"] if e["model"] == "cohere.rerank.v3-5")
    d.serving_mode = M.DedicatedServingMode(endpoint_id=ep)
    assert len(client.rerank_text(d).data.document_ranks) == 3


# ------------------------------------------------------------------------------------------ control plane

def test_list_models_paging(emulator):
    genai = emulator.genai_client()
    first = genai.list_models(compartment_id=emulator.compartment_id, limit=5)
    assert first.headers["content-type"] == "application/json"
    assert len(first.data.items) == 5 and first.next_page
    everything = oci.pagination.list_call_get_all_results(genai.list_models, compartment_id=emulator.compartment_id,
                                                          limit=7).data
    ids = [m.id for m in everything]
    assert len(ids) == len(set(ids)) and len(ids) > 30
    names = [m.display_name for m in everything]
    assert names.count("cohere.command-r-08-2024") == 3  # chat, fine-tune base, retired older version
    assert any(m.time_on_demand_retired is not None for m in everything)
    assert all(isinstance(m, G.ModelSummary) and m.vendor for m in everything)


def test_list_models_filters(emulator):
    genai = emulator.genai_client()
    chat = oci.pagination.list_call_get_all_results(genai.list_models, compartment_id=emulator.compartment_id,
                                                    capability=["CHAT"]).data
    assert chat and all("CHAT" in m.capabilities for m in chat)
    embeds = genai.list_models(compartment_id=emulator.compartment_id, capability=["TEXT_EMBEDDINGS"],
                               lifecycle_state="ACTIVE").data.items
    assert {"cohere.embed-v4.0", "cohere.embed-english-v3.0"} <= {m.display_name for m in embeds}
    both = genai.list_models(compartment_id=emulator.compartment_id,
                             capability=["TEXT_RERANK", "TEXT_EMBEDDINGS"]).data.items
    assert {"TEXT_RERANK", "TEXT_EMBEDDINGS"} == {c for m in both for c in m.capabilities}
    everything = oci.pagination.list_call_get_all_results(genai.list_models,
                                                          compartment_id=emulator.compartment_id).data
    active = oci.pagination.list_call_get_all_results(genai.list_models, compartment_id=emulator.compartment_id,
                                                      lifecycle_state="ACTIVE").data
    assert 0 < len(active) < len(everything) and all(m.lifecycle_state == "ACTIVE" for m in active)
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        genai.list_models(compartment_id="ocid1.compartment.oc1..nope")
    assert exc.value.status == 404
    # the tenancy (root compartment) is allowed too
    assert genai.list_models(compartment_id=emulator.oci_config()["tenancy"], limit=1).data.items


def test_get_model_and_endpoints(emulator):
    genai = emulator.genai_client()
    eps = genai.list_endpoints(compartment_id=emulator.compartment_id).data.items
    assert len(eps) >= 3
    by_model = {}
    for ep in eps:
        model = genai.get_model(ep.model_id).data
        assert isinstance(model, G.Model) and model.id == ep.model_id
        by_model[model.display_name] = ep
    assert "cohere.command-a-03-2025" in by_model
    ep = genai.get_endpoint(eps[0].id).data
    assert isinstance(ep, G.Endpoint) and ep.lifecycle_state == "ACTIVE"
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        genai.get_model("ocid1.generativeaimodel.oc1.us-chicago-1.nope")
    assert exc.value.status == 404
