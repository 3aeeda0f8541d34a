using SafeTune.Runtime;

namespace SafeTune.Safety.Activations;

/// <summary>How per-token, per-layer hidden states are reduced to one feature vector per prompt.</summary>
public enum ActivationPooling
{
    /// <summary>Mean over the real prompt tokens in each chosen layer, then mean over the chosen layers.</summary>
    MeanTokensThenLayers,

    /// <summary>The last real prompt token in each chosen layer, then mean over the chosen layers.</summary>
    LastToken,

    /// <summary>
    /// Mean over the real prompt tokens in each chosen layer, the layers' vectors then concatenated in layer order rather
    /// than averaged: layer count × width features, so a head can weigh each layer on its own.
    /// </summary>
    MeanTokensConcatLayers,

    /// <summary>
    /// Attention-weighted: each prompt token's chosen layers are concatenated into one row, a learned query scores every
    /// row, and the softmax of the scores over the prompt's tokens weighs the rows (<see cref="AttentionPool"/>); layer
    /// count × width features, as <see cref="MeanTokensConcatLayers"/>, which a zero query reproduces. The query is fitted
    /// with the probe (<see cref="ActivationOptions.AttentionQuery"/>).
    /// </summary>
    AttentionWeighted,
}

/// <summary>Options for <see cref="ActivationExtractor"/>.</summary>
public sealed record ActivationOptions
{
    /// <summary>Prompts run together in one session call.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>
    /// The longest token sequence read. Longer raw texts keep their first tokens; longer chat prompts keep their last
    /// tokens, so the assistant header (the point just before generation) is always read.
    /// </summary>
    public int MaxLength { get; init; } = 128;

    /// <summary>The pooling over tokens.</summary>
    public ActivationPooling Pooling { get; init; } = ActivationPooling.MeanTokensThenLayers;

    /// <summary>
    /// The layers (from 0) averaged (or, with <see cref="ActivationPooling.MeanTokensConcatLayers"/> and
    /// <see cref="ActivationPooling.AttentionWeighted"/>, concatenated) into the features; null for all layers. One index reads a single layer.
    /// </summary>
    public IReadOnlyList<int>? Layers { get; init; }

    /// <summary>
    /// With <see cref="ActivationPooling.AttentionWeighted"/>: the query that scores each token's row of concatenated layers
    /// (layer count × width values, in the raw activations' units). Required to pool that way; token rows alone
    /// (<see cref="ActivationExtractor.ExtractTokenStates"/>) need none.
    /// </summary>
    public IReadOnlyList<float>? AttentionQuery { get; init; }

    /// <summary>
    /// For models without an <c>attention_mask</c> input: when set, a batch only holds sequences of one length, so no
    /// padding is ever run. When clear (the default) sequences are padded on the right, which is exact for causal decoders.
    /// </summary>
    public bool EqualLengthBatchesWithoutMask { get; init; }

    /// <summary>The session configuration (execution provider, threads); null for the CPU defaults.</summary>
    public SessionConfig? Session { get; init; }
}
