using System.Text.Json;
using SafeTune.Cli.Commands.Generate;
using SafeTune.Cli.Infrastructure;
using SafeTune.Models.Generation;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Chat;

/// <summary>
/// <c>safetune chat --model M --tokenizer DIR [--system TEXT]</c>: an interactive conversation. Each line read from
/// standard input is a user message; the reply streams to standard output; an empty line, <c>/exit</c> or the end of
/// input ends it.
/// </summary>
public sealed class ChatCommand : Command<ChatSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, ChatSettings settings, CancellationToken cancellationToken)
    {
        var folder = ModelFolderTokenizer.Load(settings.Tokenizer);
        if (folder.Template is null)
            throw new UserInputException($"--tokenizer '{settings.Tokenizer}' has no chat template (tokenizer_config.json chat_template, chat_template.json or chat_template.jinja); use generate --prompt for a base model.");
        var model = GenerateCommand.LoadModel(settings.Model);
        var messages = new List<Dictionary<string, string>>();
        if (settings.System is { } system) messages.Add(new() { ["role"] = "system", ["content"] = system });
        var stdout = Console.Out;
        var turns = 0;
        while (true)
        {
            stdout.Write("> ");
            stdout.Flush();
            var line = Console.In.ReadLine();
            if (line is null || line.Trim().Length == 0 || line.Trim() == "/exit") break;
            messages.Add(new() { ["role"] = "user", ["content"] = line });
            using var doc = JsonDocument.Parse(JsonSerializer.Serialize(messages));
            var result = TextGeneration.Run(new TextGenerationRequest
            {
                Model = model,
                Folder = folder,
                Messages = doc.RootElement.Clone(),
                Options = new GenerationOptions
                {
                    MaxNewTokens = settings.MaxNewTokens,
                    Temperature = settings.Temperature,
                    TopP = settings.TopP,
                    Seed = settings.Seed + turns,
                },
            }, piece =>
            {
                stdout.Write(piece);
                stdout.Flush();
            });
            stdout.WriteLine();
            messages.Add(new() { ["role"] = "assistant", ["content"] = result.Text });
            turns++;
        }
        Console.Error.WriteLine($"{turns} turns");
        return ExitCodes.Ok;
    }
}
