using System.Text.Json;
using SafeTune.Models.Chat;
using SafeTune.Models.Decoders;
using SafeTune.Models.Demo;
using SafeTune.Models.Generation;
using SafeTune.Onnx;
using SafeTune.TestSupport;
using Oga = Microsoft.ML.OnnxRuntimeGenAI;

namespace SafeTune.Models.Tests.GenAi;

/// <summary>
/// The folders <see cref="GenAiFolder"/> writes, loaded by ONNX Runtime GenAI itself (Microsoft.ML.OnnxRuntimeGenAI, CPU):
/// greedy generation gives the same tokens as SafeTune's <see cref="Generator"/>, and GenAI's tokenizer and chat template
/// give the same prompt ids as SafeTune's.
/// </summary>
public sealed class GenAiRuntimeTests
{
    private static readonly ChatMessage[][] Conversations =
    [
        [ChatMessage.User("How do I bake bread?")],
        [ChatMessage.System("Be brief."), ChatMessage.User("Name three colours, please.")],
    ];

    /// <summary>A Qwen2-config decoder (attention biases, grouped-query attention) with random weights for the tiny chat tokenizer.</summary>
    private static Model Qwen2(TinyChat chat, int seed)
    {
        var config = new LlamaConfig
        {
            VocabSize = chat.Tokenizer.VocabularySize, HiddenSize = 64, Layers = 2, Heads = 4, KeyValueHeads = 2, IntermediateSize = 128,
            RopeTheta = 1_000_000, RmsNormEpsilon = 1e-6f, AttentionBias = true, TieWordEmbeddings = false,
        };
        var model = LlamaGraph.Build(config, seed: seed, options: DecoderGraphOptions.WithKvCache);
        model.MetadataProps.Add(new("hf_model_type", "qwen2"));
        model.MetadataProps.Add(new(ContextLength.MetadataKey, "256"));
        return model;
    }

    /// <summary>A GPT-2-config decoder (learned positions, LayerNorm, gelu_new, tied head) with random weights, as export --from-hf marks it.</summary>
    private static Model Gpt2(TinyChat chat, int seed)
    {
        var config = new Gpt2Config { VocabSize = chat.Tokenizer.VocabularySize, HiddenSize = 64, Layers = 2, Heads = 4, Positions = 256 };
        var model = Gpt2Graph.Build(config, seed: seed, options: DecoderGraphOptions.WithKvCache);
        model.MetadataProps.Add(new("hf_model_type", "gpt2"));
        return model;
    }

    /// <summary>The demo recipe's decoder shape (4 layers, width 128) with random weights.</summary>
    private static Model DemoSize(TinyChat chat, int seed) =>
        LlamaGraph.Build(DemoRecipe.Default.LlamaConfig(chat.Tokenizer.VocabularySize), seed: seed, options: DecoderGraphOptions.WithKvCache);

    [Theory]
    [InlineData("qwen2", 11)]
    [InlineData("qwen2", 12)]
    [InlineData("demo", 13)]
    [InlineData("gpt2", 14)]
    public void GreedyTokensMatchSafeTunesGenerator(string shape, int seed)
    {
        using var chat = new TinyChat();
        var model = shape switch { "qwen2" => Qwen2(chat, seed), "gpt2" => Gpt2(chat, seed), _ => DemoSize(chat, seed) };
        using var dir = new TempDir();
        var folder = GenAiFolder.Write(model, chat.TokenizerPath, dir.File("genai"),
            new GenAiFolderOptions { Template = chat.Template, ContextLength = 256 });
        // GPT-2 runs under GenAI's llama type (its gpt2 type asks for other inputs).
        Assert.Equal(shape == "qwen2" ? "qwen2" : "llama", folder.ModelType);
        const int newTokens = 24;

        using var ours = new Generator(model);
        using var genaiModel = new Oga.Model(folder.Directory);
        foreach (var conversation in Conversations)
        {
            var prompt = chat.Tokenizer.Encode(chat.Template.RenderPrompt(conversation));
            var expected = ours.Generate([prompt], new GenerationOptions
            {
                MaxNewTokens = newTokens, EosTokenIds = chat.Tokenizer.StopIds.ToArray(), PadTokenId = chat.Tokenizer.PadId ?? 0,
            })[0].Tokens;

            using var parameters = new Oga.GeneratorParams(genaiModel);
            parameters.SetSearchOption("max_length", prompt.Length + newTokens);
            using var generator = new Oga.Generator(genaiModel, parameters);
            generator.AppendTokens(prompt);
            while (!generator.IsDone()) generator.GenerateNextToken();
            var actual = generator.GetSequence(0).ToArray()[prompt.Length..];
            // SafeTune's generator returns the stop token it ended on; GenAI's sequence may leave it out.
            var stops = chat.Tokenizer.StopIds.ToHashSet();
            expected = [.. expected.TakeWhile(t => !stops.Contains(t))];
            actual = [.. actual.TakeWhile(t => !stops.Contains(t))];

            Assert.True(expected.SequenceEqual(actual),
                $"{shape} seed {seed}: SafeTune [{string.Join(' ', expected)}] vs GenAI [{string.Join(' ', actual)}]");
        }
    }

    [Fact]
    public void GenAisTokenizerAndChatTemplateGiveSafeTunesPromptIds()
    {
        using var chat = new TinyChat();
        using var dir = new TempDir();
        var folder = GenAiFolder.Write(Qwen2(chat, 5), chat.TokenizerPath, dir.File("genai"), new GenAiFolderOptions { Template = chat.Template });
        using var model = new Oga.Model(folder.Directory);
        using var tokenizer = new Oga.Tokenizer(model);
        foreach (var conversation in Conversations)
        {
            var messages = JsonSerializer.Serialize(conversation.Select(m => new { role = m.Role, content = m.Content }));
            string rendered = tokenizer.ApplyChatTemplate(null, messages, null, true);
            Assert.Equal(chat.Template.RenderPrompt(conversation), rendered);
            using var sequences = tokenizer.Encode(rendered);
            Assert.Equal(chat.Tokenizer.Encode(rendered), sequences[0].ToArray());
        }
    }
}
