using System.Text.RegularExpressions;
using SafeTune.Onnx;

namespace SafeTune.Autodiff.Lora;

/// <summary>
/// Settings of <see cref="LoraPass"/>: the adapter rank, the scaling numerator (the update is scaled by
/// <c>Alpha / Rank</c>), which projections to adapt, and the seed of the A matrices' initialization.
/// </summary>
public sealed record LoraOptions
{
    /// <summary>
    /// The default <see cref="Pattern"/>: every attention and MLP projection of the common decoder families, as a whole
    /// name segment (a segment ends at anything but a letter or digit: <c>/</c>, <c>.</c>, <c>_</c>). Llama, Mistral, Qwen
    /// and our own builder (<c>q_proj</c> ... <c>down_proj</c>), Phi-3 (<c>qkv_proj</c>, <c>gate_up_proj</c>), GPT-2
    /// (<c>c_attn</c>, <c>c_proj</c>, <c>c_fc</c>), BERT (<c>query</c>, <c>key</c>, <c>value</c>, <c>dense</c>), OPT and
    /// BART (<c>out_proj</c>, <c>fc1</c>, <c>fc2</c>), GPT-NeoX and Falcon (<c>query_key_value</c>, <c>dense_h_to_4h</c>),
    /// GPT-J (<c>fc_in</c>, <c>fc_out</c>), Meta's Llama and InternLM (<c>wq</c>, <c>wk</c>, <c>wv</c>, <c>wo</c>,
    /// <c>wqkv</c>, <c>w1</c>..<c>w3</c>), MPT (<c>Wqkv</c>), T5 (<c>wi</c>). It matches no LM head or embedding name
    /// (<c>lm_head</c>, <c>embed_out</c>, <c>output</c>, <c>wte</c>, <c>embed_tokens</c>, <c>word_embeddings</c>).
    /// </summary>
    public const string DefaultPattern =
        @"(?<![A-Za-z0-9])(q_proj|k_proj|v_proj|o_proj|qkv_proj|gate_proj|up_proj|down_proj|gate_up_proj|c_attn|c_proj|c_fc" +
        @"|query|key|value|query_key_value|dense|dense_h_to_4h|dense_4h_to_h|fc1|fc2|fc_in|fc_out|out_proj|in_proj" +
        @"|wqkv|Wqkv|wq|wk|wv|wo|wi|w1|w2|w3)(?![A-Za-z0-9])";

    /// <summary>The rank r of the update B·A (at least 1). Default 64.</summary>
    public int Rank { get; init; } = 64;

    /// <summary>The scaling numerator: the update is multiplied by <c>Alpha / Rank</c> (positive and finite). Default 16.</summary>
    public double Alpha { get; init; } = 16;

    /// <summary>
    /// A .NET regular expression; a projection is adapted when it finds a match in the MatMul node's name or in its weight's
    /// name (a search, not a whole-name match). Default <see cref="DefaultPattern"/>.
    /// </summary>
    public string Pattern { get; init; } = DefaultPattern;

    /// <summary>The seed of the A matrices' Kaiming-uniform initialization. Default 0.</summary>
    public int Seed { get; init; }

    /// <summary>The factor the low-rank update is multiplied by: <c>Alpha / Rank</c>.</summary>
    public double Scale => Alpha / Rank;

    /// <summary>Throws <see cref="OptionException"/> naming the option when a setting is out of range or the pattern does not compile.</summary>
    public void Validate()
    {
        if (Rank < 1)
            throw new OptionException("lora", $"{{lora}} (the LoRA rank) must be at least 1, not {Rank}.") { ParamName = nameof(Rank) };
        if (!(Alpha > 0) || double.IsInfinity(Alpha))
            throw new OptionException("lora-alpha", $"{{lora-alpha}} must be a positive finite number, not {Alpha}.") { ParamName = nameof(Alpha) };
        if (string.IsNullOrEmpty(Pattern))
            throw new OptionException("lora-pattern", "{lora-pattern} must not be empty.") { ParamName = nameof(Pattern) };
        try
        {
            _ = new Regex(Pattern, RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw new OptionException("lora-pattern", $"{{lora-pattern}} is not a valid regular expression: {e.Message}", e) { ParamName = nameof(Pattern) };
        }
    }

    internal Regex CompilePattern() => new(Pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(2));
}
