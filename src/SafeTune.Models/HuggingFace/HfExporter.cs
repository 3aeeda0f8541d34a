using SafeTune.Models.Decoders;
using SafeTune.Onnx;

namespace SafeTune.Models.HuggingFace;

/// <summary>Turns a Hugging Face checkpoint into an ONNX model built from standard ops (GPT-2, Llama, Qwen2, Mistral).</summary>
public static class HfExporter
{
    /// <summary>The model types SafeTune can export.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["gpt2", "llama", "mistral", "qwen2"];

    /// <summary>Builds the ONNX model of the checkpoint in <paramref name="directory"/>.</summary>
    public static Model Export(string directory) => Export(HfCheckpoint.Load(directory));

    /// <summary>Builds the ONNX model of a loaded checkpoint; <paramref name="options"/> can ask for the key/value-cache graph.</summary>
    public static Model Export(HfCheckpoint ckpt, Generation.DecoderGraphOptions? options = null)
    {
        var weights = ckpt.Tensors;
        try
        {
            return ckpt.ModelType switch
            {
                "gpt2" => Gpt2(ckpt, options),
                "llama" or "mistral" => Llama(ckpt, attentionBias: false, options),
                "qwen2" => Llama(ckpt, attentionBias: true, options),
                var t => throw new InvalidDataException($"{ckpt.Directory}: model_type '{t}' is not supported; supported: {string.Join(", ", SupportedModelTypes)}."),
            };
        }
        catch (KeyNotFoundException e) { throw new InvalidDataException($"{ckpt.Directory}: {e.Message}"); }
        catch (Exception e) when (e is UserInputException or ArgumentException) { throw new InvalidDataException($"{ckpt.Directory}: {e.Message}"); }
    }

    private static Model Gpt2(HfCheckpoint c, Generation.DecoderGraphOptions? options)
    {
        string prefix = c.Tensors.ContainsKey("transformer.wte.weight") ? "transformer." : "";
        var config = new Gpt2Config
        {
            VocabSize = c.Int("vocab_size"),
            HiddenSize = c.Int("n_embd"),
            Layers = c.Int("n_layer"),
            Heads = c.Int("n_head"),
            Positions = c.Int("n_positions"),
            InnerSize = c.IntOrNull("n_inner"),
            LayerNormEpsilon = (float)c.Number("layer_norm_epsilon", 1e-5),
            Activation = c.String("activation_function", "gelu_new"),
            TieWordEmbeddings = c.Bool("tie_word_embeddings", true),
        };
        var model = Gpt2Graph.Build(config, c.Tensors, prefix, options: options);
        return Tag(model, c);
    }

    private static Model Llama(HfCheckpoint c, bool attentionBias, Generation.DecoderGraphOptions? options)
    {
        int heads = c.Int("num_attention_heads");
        var config = new LlamaConfig
        {
            VocabSize = c.Int("vocab_size"),
            HiddenSize = c.Int("hidden_size"),
            Layers = c.Int("num_hidden_layers"),
            Heads = heads,
            KeyValueHeads = c.Int("num_key_value_heads", heads),
            IntermediateSize = c.Int("intermediate_size"),
            RopeTheta = c.Number("rope_theta", 10000.0),
            RmsNormEpsilon = (float)c.Number("rms_norm_eps", 1e-6),
            TieWordEmbeddings = c.Bool("tie_word_embeddings", false),
            AttentionBias = attentionBias || c.Bool("attention_bias", false),
            RopeScaling = RopeScaling(c),
        };
        if (c.Bool("mlp_bias", false))
            throw new InvalidDataException($"{Path.Combine(c.Directory, "config.json")}: mlp_bias is true; MLP biases are not supported.");
        if (c.Bool("use_sliding_window", false))
            throw new InvalidDataException($"{Path.Combine(c.Directory, "config.json")}: use_sliding_window is true; sliding-window attention is not supported.");
        if (c.IntOrNull("head_dim") is int hd && hd != config.HeadDim)
            throw new InvalidDataException($"{c.Directory}: head_dim {hd} differs from hidden_size / num_attention_heads = {config.HeadDim}; not supported.");
        return Tag(LlamaGraph.Build(config, c.Tensors, options: options), c);
    }

    /// <summary>config.json's rope_scaling: null or absent, or Llama-3's; any other kind is refused, never ignored.</summary>
    private static Llama3RopeScaling? RopeScaling(HfCheckpoint c)
    {
        if (!c.Config.TryGetProperty("rope_scaling", out var r) || r.ValueKind == System.Text.Json.JsonValueKind.Null) return null;
        string at = Path.Combine(c.Directory, "config.json");
        if (r.ValueKind != System.Text.Json.JsonValueKind.Object) throw new InvalidDataException($"{at}: rope_scaling is not an object.");
        string type = r.TryGetProperty("rope_type", out var t) || r.TryGetProperty("type", out t) ? t.GetString() ?? "" : "";
        if (type == "default") return null;
        if (type != "llama3")
            throw new InvalidDataException($"{at}: rope_scaling type '{type}' is not supported (supported: llama3, default).");
        float Field(string name) => r.TryGetProperty(name, out var v) && v.ValueKind == System.Text.Json.JsonValueKind.Number && v.GetDouble() > 0
            ? (float)v.GetDouble()
            : throw new InvalidDataException($"{at}: rope_scaling.{name} must be a positive number.");
        var s = new Llama3RopeScaling(Field("factor"), Field("low_freq_factor"), Field("high_freq_factor"), Field("original_max_position_embeddings"));
        if (!(s.HighFrequencyFactor > s.LowFrequencyFactor))
            throw new InvalidDataException($"{at}: rope_scaling.high_freq_factor must be greater than low_freq_factor.");
        return s;
    }

    private static Model Tag(Model m, HfCheckpoint c)
    {
        m.ProducerName = "SafeTune";
        m.DocString = $"Exported from a Hugging Face {c.ModelType} checkpoint.";
        m.MetadataProps.Add(new("hf_model_type", c.ModelType));
        if (c.Number("max_position_embeddings", c.Number("n_positions", 0)) is var context and >= 1 and <= int.MaxValue)
            m.MetadataProps.Add(new(Generation.ContextLength.MetadataKey, ((long)context).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        return m;
    }
}
