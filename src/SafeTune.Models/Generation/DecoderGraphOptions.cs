namespace SafeTune.Models.Generation;

/// <summary>Variants of the decoder graphs built by <see cref="Decoders.LlamaGraph"/> and <see cref="Decoders.Gpt2Graph"/>.</summary>
public sealed record DecoderGraphOptions
{
    /// <summary>
    /// Builds the key/value-cache variant (Optimum naming): inputs <c>input_ids</c> int64 [batch, sequence],
    /// <c>attention_mask</c> int64 [batch, past_sequence + sequence] (1 = real token, 0 = padding) and, per layer i,
    /// <c>past_key_values.{i}.key</c> / <c>.value</c> float [batch, kv_heads, past_sequence, head_dim] (past_sequence may
    /// be 0); outputs <c>logits</c> [batch, sequence, vocab] and <c>present.{i}.key</c> / <c>.value</c>
    /// [batch, kv_heads, past_sequence + sequence, head_dim]. A token's position is the number of real tokens before it
    /// in its row, so left padding works. False (the default) builds the plain graph with the single input <c>input_ids</c>.
    /// </summary>
    public bool KvCache { get; init; }

    /// <summary>The plain graph.</summary>
    public static DecoderGraphOptions Default { get; } = new();

    /// <summary>The key/value-cache variant.</summary>
    public static DecoderGraphOptions WithKvCache { get; } = new() { KvCache = true };
}
