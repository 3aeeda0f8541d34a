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

    /// <summary>Builds the ONNX model of a loaded checkpoint.</summary>
    public static Model Export(HfCheckpoint ckpt)
    {
        var weights = ckpt.Tensors;
        try
        {
            return ckpt.ModelType switch
            {
                "gpt2" => Gpt2(ckpt),
                "llama" or "mistral" => Llama(ckpt, attentionBias: false),
                "qwen2" => Llama(ckpt, attentionBias: true),
                var t => throw new InvalidDataException($"{ckpt.Directory}: model_type '{t}' is not supported; supported: {string.Join(", ", SupportedModelTypes)}."),
            };
        }
        catch (KeyNotFoundException e) { throw new InvalidDataException($"{ckpt.Directory}: {e.Message}"); }
        catch (ArgumentException e) { throw new InvalidDataException($"{ckpt.Directory}: {e.Message}"); }
    }

    private static Model Gpt2(HfCheckpoint c)
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
        var model = Gpt2Graph.Build(config, c.Tensors, prefix);
        return Tag(model, c);
    }

    private static Model Llama(HfCheckpoint c, bool attentionBias)
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
        };
        if (c.IntOrNull("head_dim") is int hd && hd != config.HeadDim)
            throw new InvalidDataException($"{c.Directory}: head_dim {hd} differs from hidden_size / num_attention_heads = {config.HeadDim}; not supported.");
        return Tag(LlamaGraph.Build(config, c.Tensors), c);
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
