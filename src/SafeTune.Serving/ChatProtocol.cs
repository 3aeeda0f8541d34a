using System.Text.Json;

namespace SafeTune.Serving;

/// <summary>The OpenAI chat-completions wire format: requests in, completions, model lists and errors out.</summary>
public static class ChatProtocol
{
    /// <summary>Reads a <c>POST /v1/chat/completions</c> body.</summary>
    /// <exception cref="ChatRequestException">(400) The body is not such a request, or asks for what is not supported (streaming, n &gt; 1).</exception>
    public static ChatCompletionRequest ParseRequest(ReadOnlySpan<byte> body)
    {
        JsonDocument doc;
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            doc = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException e)
        {
            throw new ChatRequestException(400, $"the request body is not valid JSON: {e.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ChatRequestException(400, "the request body must be a JSON object.");
            if (Member(root, "stream") is { ValueKind: JsonValueKind.True })
                throw new ChatRequestException(400, "streaming is not supported; send \"stream\": false.");
            if (Member(root, "n") is { } n && (n.ValueKind != JsonValueKind.Number || !n.TryGetInt32(out var count) || count != 1))
                throw new ChatRequestException(400, "only n = 1 is supported.");
            if (Member(root, "messages") is not { ValueKind: JsonValueKind.Array } messages)
                throw new ChatRequestException(400, "'messages' must be an array of {\"role\", \"content\"} objects.");
            var turns = new List<ChatTurn>();
            int index = 0;
            foreach (var m in messages.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.Object || Member(m, "role") is not { ValueKind: JsonValueKind.String } role)
                    throw new ChatRequestException(400, $"messages[{index}] needs a string 'role'.");
                turns.Add(new ChatTurn(role.GetString()!, Content(Member(m, "content"), index)));
                index++;
            }
            return new ChatCompletionRequest
            {
                Model = Member(root, "model") is { ValueKind: JsonValueKind.String } model ? model.GetString() : null,
                Messages = turns,
                MaxTokens = Integer(root, "max_completion_tokens") ?? Integer(root, "max_tokens"),
                Temperature = Number(root, "temperature"),
                TopP = Number(root, "top_p"),
                Stop = Stops(Member(root, "stop")),
                Seed = Integer(root, "seed"),
            };
        }
    }

    /// <summary>Writes a completion: <c>{"id", "object": "chat.completion", "created", "model", "choices": [...], "usage"}</c>.</summary>
    public static void WriteCompletion(Utf8JsonWriter w, string id, string model, ChatCompletionResult result, DateTimeOffset created)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(result);
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion");
        w.WriteNumber("created", created.ToUnixTimeSeconds());
        w.WriteString("model", model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("message");
        w.WriteString("role", "assistant");
        w.WriteString("content", result.Content);
        w.WriteEndObject();
        w.WriteNull("logprobs");
        w.WriteString("finish_reason", result.FinishReason == ChatFinishReason.Length ? "length" : "stop");
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", result.PromptTokens);
        w.WriteNumber("completion_tokens", result.CompletionTokens);
        w.WriteNumber("total_tokens", result.PromptTokens + result.CompletionTokens);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>Writes the model list of <c>GET /v1/models</c>.</summary>
    public static void WriteModels(Utf8JsonWriter w, string model, DateTimeOffset created)
    {
        ArgumentNullException.ThrowIfNull(w);
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        WriteModel(w, model, created);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>Writes one model object.</summary>
    public static void WriteModel(Utf8JsonWriter w, string model, DateTimeOffset created)
    {
        ArgumentNullException.ThrowIfNull(w);
        w.WriteStartObject();
        w.WriteString("id", model);
        w.WriteString("object", "model");
        w.WriteNumber("created", created.ToUnixTimeSeconds());
        w.WriteString("owned_by", "safetune");
        w.WriteEndObject();
    }

    /// <summary>Writes an error: <c>{"error": {"message", "type", "code"}}</c>.</summary>
    public static void WriteError(Utf8JsonWriter w, int status, string message)
    {
        ArgumentNullException.ThrowIfNull(w);
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", message);
        w.WriteString("type", status is >= 400 and < 500 ? "invalid_request_error" : "server_error");
        w.WriteNumber("code", status);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static JsonElement? Member(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    private static string Content(JsonElement? content, int index)
    {
        switch (content?.ValueKind)
        {
            case null: return "";
            case JsonValueKind.String: return content.Value.GetString()!;
            case JsonValueKind.Array:
                var parts = new List<string>();
                foreach (var part in content.Value.EnumerateArray())
                {
                    if (part.ValueKind == JsonValueKind.String) { parts.Add(part.GetString()!); continue; }
                    if (part.ValueKind != JsonValueKind.Object || Member(part, "type") is not { ValueKind: JsonValueKind.String } type)
                        throw new ChatRequestException(400, $"messages[{index}].content parts need a 'type'.");
                    if (type.GetString() != "text")
                        throw new ChatRequestException(400, $"messages[{index}] has a '{type.GetString()}' part; only text is supported.");
                    parts.Add(Member(part, "text") is { ValueKind: JsonValueKind.String } t ? t.GetString()! : "");
                }
                return string.Concat(parts);
            default:
                throw new ChatRequestException(400, $"messages[{index}].content must be a string or an array of text parts.");
        }
    }

    private static int? Integer(JsonElement root, string name)
    {
        if (Member(root, name) is not { } v) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var l)) return (int)Math.Clamp(l, int.MinValue, int.MaxValue);
        throw new ChatRequestException(400, $"'{name}' must be a whole number.");
    }

    private static double? Number(JsonElement root, string name)
    {
        if (Member(root, name) is not { } v) return null;
        if (v.ValueKind == JsonValueKind.Number) return v.GetDouble();
        throw new ChatRequestException(400, $"'{name}' must be a number.");
    }

    private static List<string> Stops(JsonElement? stop) => stop?.ValueKind switch
    {
        null => [],
        JsonValueKind.String => [stop.Value.GetString()!],
        JsonValueKind.Array when stop.Value.EnumerateArray().All(s => s.ValueKind == JsonValueKind.String) && stop.Value.GetArrayLength() <= 16 =>
            [.. stop.Value.EnumerateArray().Select(s => s.GetString()!)],
        _ => throw new ChatRequestException(400, "'stop' must be a string or an array of at most 16 strings."),
    };

    /// <summary>A new completion id: <c>chatcmpl-</c> and 24 hex digits.</summary>
    public static string NewId() => "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];
}
