using SafeTune.Onnx;

namespace SafeTune.Models.Decoders;

/// <summary>The shape of a GPT-2 decoder.</summary>
public sealed record Gpt2Config
{
    /// <summary>Vocabulary size.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Width (n_embd).</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Blocks (n_layer).</summary>
    public required int Layers { get; init; }
    /// <summary>Heads (n_head).</summary>
    public required int Heads { get; init; }
    /// <summary>Learned positions (n_positions).</summary>
    public required int Positions { get; init; }
    /// <summary>MLP width (n_inner, default 4 x width).</summary>
    public int? InnerSize { get; init; }
    /// <summary>Added to the variance in every LayerNorm (layer_norm_epsilon).</summary>
    public float LayerNormEpsilon { get; init; } = 1e-5f;
    /// <summary>The MLP activation: gelu_new (tanh approximation, the default), gelu (erf) or relu.</summary>
    public string Activation { get; init; } = "gelu_new";
    /// <summary>True when the LM head is the token embedding (GPT-2 always ties).</summary>
    public bool TieWordEmbeddings { get; init; } = true;

    /// <summary>Throws <see cref="UserInputException"/> naming the field when the shape is inconsistent.</summary>
    public void Validate()
    {
        if (VocabSize <= 0 || HiddenSize <= 0 || Layers <= 0 || Heads <= 0 || Positions <= 0)
            throw new UserInputException("every size in a GPT-2 config must be positive.");
        if (HiddenSize % Heads != 0) throw new UserInputException($"n_embd {HiddenSize} is not divisible by n_head {Heads}.");
        if (Activation is not ("gelu_new" or "gelu" or "gelu_pytorch_tanh" or "relu"))
            throw new UserInputException($"activation_function '{Activation}' is not supported (gelu_new, gelu_pytorch_tanh, gelu, relu).");
    }
}
