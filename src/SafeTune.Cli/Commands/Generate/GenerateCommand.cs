using System.Text.Json;
using SafeTune.Cli.Infrastructure;
using SafeTune.Models.Generation;
using SafeTune.Models.Tokenization;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Generate;

/// <summary><c>safetune generate --model M.onnx --tokenizer DIR (--prompt TEXT | --messages FILE.json) [--max-new-tokens N] [--temperature T --top-p P --seed S] [--json]</c>.</summary>
public sealed class GenerateCommand : Command<GenerateSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, GenerateSettings settings, CancellationToken cancellationToken)
    {
        var request = new TextGenerationRequest
        {
            Model = LoadModel(settings.Model),
            Folder = ModelFolderTokenizer.Load(settings.TokenizerOrDefault),
            Prompt = settings.Prompt,
            Messages = settings.Messages is { } path ? ReadMessages(path) : null,
            Options = new GenerationOptions
            {
                MaxNewTokens = settings.MaxNewTokens,
                Temperature = settings.Temperature,
                TopP = settings.TopP,
                Seed = settings.Seed,
            },
        };
        if (settings.Json)
        {
            var result = TextGeneration.Run(request);
            JsonOut.Write(w =>
            {
                w.WriteString("text", result.Text);
                w.WriteStartArray("ids");
                foreach (var id in result.Ids) w.WriteNumberValue(id);
                w.WriteEndArray();
                w.WriteNumber("prompt_tokens", result.PromptTokens);
                w.WriteNumber("tokens_per_second", Math.Round(result.TokensPerSecond, 1));
                w.WriteString("finish_reason", result.Reason.ToString());
                w.WriteBoolean("kv_cache", result.UsedCache);
            });
            return ExitCodes.Ok;
        }
        var stdout = Console.Out;
        var streamed = TextGeneration.Run(request, piece =>
        {
            stdout.Write(piece);
            stdout.Flush();
        });
        stdout.WriteLine();
        Console.Error.WriteLine($"{streamed.Ids.Length} tokens after a {streamed.PromptTokens}-token prompt, {streamed.TokensPerSecond:F1} tokens/s ({streamed.Reason})");
        return ExitCodes.Ok;
    }

    /// <summary>
    /// An ONNX file as it is, a GenAI or Optimum model folder (<see cref="DecoderFolder"/>), or a Hub checkpoint folder
    /// built with its key/value-cache graph.
    /// </summary>
    internal static Onnx.Model LoadModel(string model) =>
        !DecoderFolder.IsDecoderFolder(model) && Directory.Exists(model) && File.Exists(Path.Combine(model, "config.json"))
            ? Models.HuggingFace.HfExporter.Export(Models.HuggingFace.HfCheckpoint.Load(model), DecoderGraphOptions.WithKvCache)
            : ModelSource.Load(model);

    private static JsonElement ReadMessages(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"--messages '{path}' not found.", path);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"--messages '{path}' is not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("messages", out var inner)) root = inner;
            if (root.ValueKind != JsonValueKind.Array) throw new InvalidDataException($"--messages '{path}' must hold an array of {{\"role\", \"content\"}} messages.");
            return root.Clone();
        }
    }
}
