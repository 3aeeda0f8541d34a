using SafeTune.Onnx;

namespace SafeTune.Models.Decoders;

/// <summary>The shape of a Llama-family decoder (Llama, Qwen2 without biases, Mistral without sliding window).</summary>
public sealed record LlamaConfig
{
    /// <summary>Vocabulary size.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Residual-stream width.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Number of transformer blocks.</summary>
    public required int Layers { get; init; }
    /// <summary>Query heads.</summary>
    public required int Heads { get; init; }
    /// <summary>Key/value heads (grouped-query attention when fewer than <see cref="Heads"/>).</summary>
    public required int KeyValueHeads { get; init; }
    /// <summary>Width of the SwiGLU MLP.</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>RoPE base.</summary>
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary>Added to the mean square in every RMSNorm (rms_norm_eps).</summary>
    public float RmsNormEpsilon { get; init; } = 1e-6f;
    /// <summary>True when the LM head shares the token-embedding matrix.</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>True when the query, key and value projections have biases (Qwen2).</summary>
    public bool AttentionBias { get; init; }

    /// <summary>Llama-3's RoPE frequency scaling (<c>rope_scaling</c> with <c>rope_type: llama3</c>); null for plain RoPE.</summary>
    public Llama3RopeScaling? RopeScaling { get; init; }

    /// <summary>Width of one attention head.</summary>
    public int HeadDim => HiddenSize / Heads;

    /// <summary>
    /// RoPE's inverse frequencies <c>1 / theta^(2i / head_dim)</c>, i &lt; head_dim / 2, with <see cref="RopeScaling"/>
    /// applied as Hugging Face applies it. The base frequencies are computed in double precision and rounded (transformers
    /// computes them in float32; the two differ by at most one unit in the last place), as every model SafeTune built
    /// before has them, so that trained recipes such as the demo model's stay reproducible.
    /// </summary>
    public float[] InverseFrequencies()
    {
        int hd = HeadDim;
        var inv = new float[hd / 2];
        for (int i = 0; i < inv.Length; i++) inv[i] = (float)(1.0 / Math.Pow(RopeTheta, 2.0 * i / hd));
        if (RopeScaling is { } s)
        {
            // transformers' _compute_llama3_parameters: long wavelengths are slowed by the factor, short ones kept,
            // and those in between blended smoothly.
            float lowWavelen = s.OriginalMaxPositions / s.LowFrequencyFactor, highWavelen = s.OriginalMaxPositions / s.HighFrequencyFactor;
            for (int i = 0; i < inv.Length; i++)
            {
                float wavelen = 2 * MathF.PI / inv[i];
                float scaled = wavelen > lowWavelen ? inv[i] / s.Factor : inv[i];
                if (!(wavelen < highWavelen) && !(wavelen > lowWavelen))
                {
                    float smooth = (s.OriginalMaxPositions / wavelen - s.LowFrequencyFactor) / (s.HighFrequencyFactor - s.LowFrequencyFactor);
                    scaled = (1 - smooth) * scaled / s.Factor + smooth * scaled;
                }
                inv[i] = scaled;
            }
        }
        return inv;
    }

    /// <summary>Throws <see cref="UserInputException"/> naming the field when the shape is inconsistent.</summary>
    public void Validate()
    {
        if (VocabSize <= 0 || HiddenSize <= 0 || Layers <= 0 || Heads <= 0 || KeyValueHeads <= 0 || IntermediateSize <= 0)
            throw new UserInputException("every size in a Llama config must be positive.");
        if (HiddenSize % Heads != 0) throw new UserInputException($"hidden size {HiddenSize} is not divisible by {Heads} heads.");
        if (Heads % KeyValueHeads != 0) throw new UserInputException($"{Heads} heads are not divisible by {KeyValueHeads} key/value heads.");
        if (HeadDim % 2 != 0) throw new UserInputException($"head width {HeadDim} must be even for rotary embeddings.");
    }

    /// <summary>A tiny model for demos and tests: 4 layers, width 256, 8 heads (4 key/value heads), vocabulary 4096.</summary>
    public static LlamaConfig Tiny => new()
    {
        VocabSize = 4096, HiddenSize = 256, Layers = 4, Heads = 8, KeyValueHeads = 4, IntermediateSize = 688, TieWordEmbeddings = true,
    };

    /// <summary>
    /// The benchmark model: 4 layers, width 256, 8 heads, SwiGLU width 704, vocabulary 4096, tied head (4.26M parameters).
    /// </summary>
    public static LlamaConfig Bench => new()
    {
        VocabSize = 4096, HiddenSize = 256, Layers = 4, Heads = 8, KeyValueHeads = 8, IntermediateSize = 704, TieWordEmbeddings = true,
    };

    /// <summary>The number of float parameters the model holds.</summary>
    public long ParameterCount
    {
        get
        {
            long d = HiddenSize, kv = (long)KeyValueHeads * HeadDim;
            long perLayer = d * d * 2 + d * kv * 2 + 3L * d * IntermediateSize + 2 * d + (AttentionBias ? d + 2 * kv : 0);
            return VocabSize * d * (TieWordEmbeddings ? 1 : 2) + Layers * perLayer + d;
        }
    }
}

/// <summary>Llama-3's <c>rope_scaling</c> (<c>rope_type: llama3</c>), as in Llama-3.1 and Llama-3.2 configs.</summary>
/// <param name="Factor">How much long wavelengths are stretched (<c>factor</c>, 32 for Llama-3.2).</param>
/// <param name="LowFrequencyFactor"><c>low_freq_factor</c>.</param>
/// <param name="HighFrequencyFactor"><c>high_freq_factor</c>.</param>
/// <param name="OriginalMaxPositions"><c>original_max_position_embeddings</c>.</param>
public sealed record Llama3RopeScaling(float Factor, float LowFrequencyFactor, float HighFrequencyFactor, float OriginalMaxPositions);
