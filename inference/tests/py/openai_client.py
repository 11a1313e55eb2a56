"""Talks to a running `wxpilot inference serve` with the official `openai` package.

Usage: openai_client.py BASE_URL API_KEY
The server must serve the scripted backend of the Rust test that starts this script:
it answers "Hello from wxpilot" for the chat call, "one two three" for the streamed call,
and hashed embeddings. Prints one line per check and exits non-zero on the first failure.
"""

import sys

import openai


def main() -> int:
    base_url, api_key = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)

    models = [m.id for m in client.models.list()]
    assert models == ["scripted-embedding", "scripted-chat"], models
    print("models ok")

    chat = client.chat.completions.create(
        model="scripted-chat",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello"},
        ],
        max_tokens=16,
        temperature=0,
        seed=42,
        stop=["\n\n"],
    )
    assert chat.choices[0].message.content == "Hello from wxpilot", chat
    assert chat.choices[0].finish_reason == "stop", chat
    assert chat.usage.completion_tokens == 3, chat.usage
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + 3, chat.usage
    print("chat ok")

    pieces = []
    usage = None
    finish = None
    stream = client.chat.completions.create(
        model="scripted-chat",
        messages=[{"role": "user", "content": "Count"}],
        max_completion_tokens=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert "".join(pieces) == "one two", pieces
    assert finish == "length", finish
    assert usage is not None and usage.completion_tokens == 2, usage
    print("stream ok")

    # The client asks for base64 by default and decodes it; ask for floats too.
    for fmt in (None, "float"):
        kwargs = {} if fmt is None else {"encoding_format": fmt}
        emb = client.embeddings.create(
            model="scripted-embedding", input=["red apple", "blue sky"], **kwargs
        )
        assert len(emb.data) == 2, emb
        first = list(emb.data[0].embedding)
        assert len(first) == 16, len(first)
        norm = sum(x * x for x in first)
        assert abs(norm - 1.0) < 1e-4, norm
    single = client.embeddings.create(model="scripted-embedding", input="red apple")
    # Base64 carries the exact f32s, JSON their shortest decimals: equal to 5 places.
    assert [round(x, 5) for x in single.data[0].embedding] == [round(x, 5) for x in first]
    assert list(single.data[0].embedding) == list(
        client.embeddings.create(model="scripted-embedding", input=["red apple"]).data[0].embedding
    )
    print("embeddings ok")

    try:
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    except openai.AuthenticationError as error:
        assert error.status_code == 401
        print("auth ok")
    else:
        raise AssertionError("a wrong key was accepted")

    try:
        client.chat.completions.create(
            model="scripted-chat", messages=[{"role": "user", "content": "busy?"}]
        )
    except openai.RateLimitError as error:
        assert error.status_code == 429
        assert error.response.headers.get("retry-after") == "1"
        print("overload ok")
    else:
        raise AssertionError("expected 429")
    return 0


if __name__ == "__main__":
    sys.exit(main())
